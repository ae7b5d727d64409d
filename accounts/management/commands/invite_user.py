"""Print a sign-up link for one person (FLOWS_SIGNUP=invite)."""

from django.conf import settings
from django.core.management.base import BaseCommand
from django.urls import reverse

from accounts.signup import make_invite


class Command(BaseCommand):
    help = "Print an invitation link to create one account (valid FLOWS_INVITE_MAX_AGE_S)."

    def add_arguments(self, parser):
        parser.add_argument("email")

    def handle(self, *args, **options):
        base = settings.FLOWS_PUBLIC_URL.rstrip("/") or "http://127.0.0.1:8000"
        path = reverse("signup")
        self.stdout.write(f"{base}{path}?invite={make_invite(options['email'])}")
