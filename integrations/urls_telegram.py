"""Telegram bot updates, included at hooks/telegram/."""

from django.urls import path

from integrations import views

urlpatterns = [
    path("<str:webhook_token>/", views.telegram_hook, name="telegram-hook"),
]
