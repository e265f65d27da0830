"""URLs of the example project."""

from django.urls import path

from . import views

urlpatterns = [
    path("token", views.token),
    path("messages", views.send),
    path("health", views.health),
    path("chat", views.chat_page),
    path("chat/token", views.chat_token),
    path("chat/signalwire-client.js", views.chat_client_js),
]
