"""API tokens on the wire: `Bearer <token>`, `Basic base64(<any-name>:<token>)`, `<name>:<token>`."""

from __future__ import annotations

import base64
import binascii

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from events.accounts.models import ApiToken


def secret_from_authorization(header: str) -> str | None:
    """The token secret carried by an Authorization header value, or None."""
    scheme, _, credentials = header.strip().partition(" ")
    scheme = scheme.lower()
    credentials = credentials.strip()
    if scheme == "bearer":
        return credentials or None
    if scheme == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return secret_from_auth_string(decoded)
    return None


def secret_from_auth_string(value: str | None) -> str | None:
    """`PREFECT_API_AUTH_STRING` is `<name>:<token>`; a bare token is accepted as well."""
    if not value:
        return None
    _, sep, secret = value.partition(":")
    return (secret if sep else value) or None


def authenticate_secret(secret: str | None) -> ApiToken | None:
    return ApiToken.authenticate(secret) if secret else None


class TokenAuthentication(authentication.BaseAuthentication):
    """DRF authentication by API token; answers 401 (not 403) when credentials are missing."""

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        token = authenticate_secret(secret_from_authorization(header))
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API token.")
        return token.user, token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class TokenScheme(OpenApiAuthenticationExtension):
    target_class = "events.api.auth.TokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An eventsite API token"}
