from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("hooks/github/", include("integrations.urls_hooks")),
    path("hooks/telegram/", include("integrations.urls_telegram")),
    path("hooks/", include("flows.urls_hooks")),
    path("", include("web.urls")),
]
