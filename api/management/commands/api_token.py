"""``manage.py api_token create --user USERNAME [--name NAME] [--days N]`` prints a new token
(for scripts and tests); ``api_token revoke --user USERNAME --name NAME`` revokes that user's
usable tokens of that name. Both are audit events, recorded as a system job."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from api.models import ApiToken
from api.tokens import token_create, token_revoke
from edc.models import User
from edc.sources import Source, audit_source


class Command(BaseCommand):
    help = "Create or revoke an API token."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["create", "revoke"])
        parser.add_argument("--user", required=True)
        parser.add_argument("--name", default="")
        parser.add_argument("--days", type=int, default=None)

    def handle(self, *args, action, user, name, days, **options):
        holder = User.objects.filter(username=user).first()
        if holder is None:
            raise CommandError(f"No user {user!r}.")
        with audit_source(Source.SYSTEM):
            if action == "create":
                try:
                    _token, plain = token_create(user=holder, name=name or "command line",
                                                 days=days)
                except (ValidationError, PermissionDenied) as error:
                    message = "; ".join(getattr(error, "messages", [str(error)]))
                    raise CommandError(message) from None
                self.stdout.write(plain)
                return
            if not name:
                raise CommandError("Name the token to revoke (--name).")
            found = list(ApiToken.objects.usable().filter(user=holder, name=name))
            if not found:
                raise CommandError(f"{user} has no usable token named {name!r}.")
            for token in found:
                token_revoke(token=token, actor=holder)
            self.stdout.write(f"Revoked {len(found)} token(s).")
