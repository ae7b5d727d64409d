from django.urls import path

from flows import views_hooks

app_name = "flows"

urlpatterns = [
    path("<str:token>/", views_hooks.hook, name="hook"),
    path("<str:token>/runs/<int:run_id>/", views_hooks.hook_run, name="hook_run"),
]
