"""GitHub webhook deliveries, included at hooks/github/."""

from django.urls import path

from integrations import views

urlpatterns = [
    path("<str:webhook_token>/", views.github_hook, name="github-hook"),
]
