"""Re-encrypt every connection's secrets with the newest key of FLOWS_ENCRYPTION_KEY.

Rotation: put the new key first and keep the old one after it (FLOWS_ENCRYPTION_KEY="new,old"),
run this command, then drop the old key.
"""

from cryptography.fernet import InvalidToken
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from flows import crypto
from integrations.models import Connection


class Command(BaseCommand):
    help = "Re-encrypt every connection's secrets with the newest key of FLOWS_ENCRYPTION_KEY."

    def handle(self, *args, **options) -> None:
        rotated: dict[int, str] = {}
        unreadable: list[str] = []
        for pk, name, token in Connection.objects.exclude(secrets_encrypted="").values_list(
            "pk", "name", "secrets_encrypted"
        ):
            try:
                rotated[pk] = crypto.rotate(token)
            except InvalidToken:
                unreadable.append(f"{name} (id {pk})")
        if unreadable:
            raise CommandError(
                f"{len(unreadable)} connection(s) cannot be decrypted with any key in "
                f"FLOWS_ENCRYPTION_KEY: {', '.join(unreadable)}. Nothing was changed: add the key "
                "they were encrypted with after the new one, and run this again."
            )
        with transaction.atomic():
            for pk, token in rotated.items():
                Connection.objects.filter(pk=pk).update(secrets_encrypted=token)
        self.stdout.write(
            f"Re-encrypted the secrets of {len(rotated)} connection(s) with the newest key."
        )
