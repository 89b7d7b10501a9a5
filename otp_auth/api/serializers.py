"""Request serializers check shapes only; codes and destinations are judged by the
services. Response serializers describe (and render) what the views return.

Strings must be JSON strings and ids JSON integers: ``{"code": 123456}`` is a 400 with a
field error, not a guess.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from ..constants import Channel

__all__ = [
    "ChallengeSerializer",
    "CredentialSerializer",
    "DeviceAddSerializer",
    "DeviceConfirmedSerializer",
    "DeviceRemoveSerializer",
    "DeviceSerializer",
    "EnrollmentSerializer",
    "ErrorSerializer",
    "FactorSerializer",
    "FlowSerializer",
    "LoginChallengeSerializer",
    "LoginSerializer",
    "StepUpProofSerializer",
    "StepUpSerializer",
    "SwitchSerializer",
    "UserSerializer",
    "VerifySerializer",
]

MAX_ID = 2**63 - 1  # a BIGINT primary key
FACTOR_KINDS = ["code", "totp", "webauthn", "recovery"]


class StrictCharField(serializers.CharField):
    """A ``CharField`` that refuses numbers instead of turning them into strings."""

    default_error_messages = {"invalid": _("Must be a string.")}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class StrictIntegerField(serializers.IntegerField):
    """An ``IntegerField`` that refuses strings, floats and booleans."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return int(super().to_internal_value(data))


def code_field() -> StrictCharField:
    # No length limit: a code of the wrong length is a wrong code, judged and counted by
    # the service like any other.
    return StrictCharField(
        trim_whitespace=False,
        allow_blank=True,
        help_text=_("The code the user received. Spaces and dashes are ignored."),
    )


def device_id_field(**kwargs: Any) -> StrictIntegerField:
    return StrictIntegerField(min_value=1, max_value=MAX_ID, **kwargs)


# Requests ------------------------------------------------------------------------------


class LoginSerializer(serializers.Serializer[Any]):
    username = StrictCharField(max_length=254, trim_whitespace=False)
    password = StrictCharField(
        max_length=4096, trim_whitespace=False, style={"input_type": "password"}
    )


class FlowSerializer(serializers.Serializer[Any]):
    challenge = StrictCharField(
        max_length=1024,
        help_text=_("The opaque login challenge returned by the login step."),
    )


class VerifySerializer(FlowSerializer):
    code = code_field()


class SwitchSerializer(FlowSerializer):
    factor = StrictCharField(
        max_length=64, help_text=_("The key of a factor from the login answer's list.")
    )


class StepUpProofSerializer(serializers.Serializer[Any]):
    challenge = StrictCharField(
        max_length=64,
        required=False,
        help_text=_(
            "The challenge returned by the step-up endpoint; leave it out for a "
            "code from the user's authenticator app."
        ),
    )
    code = code_field()


class DeviceAddSerializer(serializers.Serializer[Any]):
    channel = serializers.ChoiceField(choices=Channel.choices)
    destination = StrictCharField(
        max_length=254,
        help_text=_("Phone number (international format) or email address."),
    )
    name = StrictCharField(max_length=64, required=False, allow_blank=True, default="")
    step_up = StepUpProofSerializer(
        required=False,
        help_text=_("A fresh code from the step-up endpoint; needed once a device exists."),
    )


class DeviceConfirmSerializer(serializers.Serializer[Any]):
    challenge = StrictCharField(
        max_length=64, help_text=_("The challenge returned when the device was added.")
    )
    code = code_field()


class DeviceRemoveSerializer(serializers.Serializer[Any]):
    step_up = StepUpProofSerializer(
        required=False,
        help_text=_(
            "A fresh code from the step-up endpoint. A session that passed a "
            "second factor within STEP_UP_MAX_AGE may leave it out."
        ),
    )


class StepUpSerializer(serializers.Serializer[Any]):
    device = device_id_field(
        required=False, help_text=_("Device to send the code to; the last used by default.")
    )


# Responses -----------------------------------------------------------------------------


class DeviceSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    destination = serializers.CharField(source="masked_destination")
    channels = serializers.ListField(child=serializers.CharField())
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)


class ChallengeSerializer(serializers.Serializer[Any]):
    challenge = serializers.CharField(help_text=_("Send it back with the code."))
    channel = serializers.ChoiceField(choices=Channel.choices)
    destination = serializers.CharField(help_text=_("Masked: ••••4567 or a••••@example.com."))
    expires_at = serializers.DateTimeField()


class FactorSerializer(serializers.Serializer[Any]):
    key = serializers.CharField(
        help_text=_("'device:<id>', 'totp:<id>', 'webauthn' or 'recovery'.")
    )
    kind = serializers.ChoiceField(choices=FACTOR_KINDS)
    label = serializers.CharField(  # type: ignore[assignment]  # the JSON key
        help_text=_("Masked, safe to show.")
    )
    channel = serializers.ChoiceField(choices=Channel.choices, allow_blank=True)


class LoginChallengeSerializer(serializers.Serializer[Any]):
    challenge = serializers.CharField(help_text=_("Send it back with the code."))
    factor = serializers.CharField(help_text=_("The key of the factor to answer with."))
    kind = serializers.ChoiceField(
        choices=FACTOR_KINDS,
        help_text=_(
            "'code': sent to the device; 'totp': from the authenticator app; "
            "'webauthn': a security key or passkey (see the login/webauthn endpoints); "
            "'recovery': one of the user's recovery codes."
        ),
    )
    label = serializers.CharField(  # type: ignore[assignment]  # the JSON key
        help_text=_("Masked, safe to show.")
    )
    channel = serializers.ChoiceField(
        choices=Channel.choices, allow_null=True, help_text=_("For a sent code.")
    )
    destination = serializers.CharField(
        allow_null=True, help_text=_("For a sent code, masked: ••••4567 or a••••@example.com.")
    )
    expires_at = serializers.DateTimeField(allow_null=True)
    resend_available_at = serializers.DateTimeField(allow_null=True)
    resends_left = serializers.IntegerField(allow_null=True)
    factors = FactorSerializer(many=True, help_text=_("The user's other factors, to switch to."))
    notice = serializers.CharField(
        allow_blank=True,
        help_text=_(
            "Empty, or why the default factor cannot be used now (its device cannot get "
            "more codes for a while): show it, and offer the other factors."
        ),
    )


class EnrollmentSerializer(ChallengeSerializer):
    device = DeviceSerializer()


class StepUpChallengeSerializer(ChallengeSerializer):
    pass


class UserSerializer(serializers.Serializer[Any]):
    id = serializers.CharField()
    username = serializers.CharField()


class CredentialSerializer(serializers.Serializer[Any]):
    credential = serializers.ChoiceField(
        choices=["token", "session", "custom"],
        help_text=_(
            "What was issued, per OTP_AUTH['API_CREDENTIAL']. A custom issuer adds its own fields."
        ),
    )
    verified = serializers.BooleanField(
        help_text=_("True once the second factor passed; false for a user without a device.")
    )
    enrollment_required = serializers.BooleanField()
    user = UserSerializer()
    token = serializers.CharField(
        required=False, help_text=_("With credential 'token': send 'Authorization: Token <key>'.")
    )


class DeviceConfirmedSerializer(serializers.Serializer[Any]):
    device = DeviceSerializer()
    credential = CredentialSerializer(
        allow_null=True,
        help_text=_("A verified credential when this was the caller's first device."),
    )


class ErrorSerializer(serializers.Serializer[Any]):
    code = serializers.CharField(help_text=_("Stable error code."))
    detail = serializers.CharField(help_text=_("Message for people; may be translated."))
    fields = serializers.DictField(  # type: ignore[assignment]  # the JSON key, not .fields
        required=False, help_text=_("Field errors, with code 'invalid'.")
    )
