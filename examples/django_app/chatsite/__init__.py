"""A minimal Django project using signalwire_chat: a token view, a send view, error mapping."""
