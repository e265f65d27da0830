"""URLs of the example project."""

from django.urls import path

from . import views

urlpatterns = [
    path("token", views.token),
    path("messages", views.send),
    path("health", views.health),
]
