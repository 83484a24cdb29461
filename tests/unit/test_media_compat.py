"""The private aiortc names the worker hooks into are present (fails loudly on an upgrade)."""

from __future__ import annotations

import pytest

from atrium_media import aiortc_compat


def test_static_names_present() -> None:
    aiortc_compat.check_static()


def test_missing_instance_attribute_raises_clear_error() -> None:
    with pytest.raises(aiortc_compat.AiortcCompatError, match="_RTCRtpSender__rtp_history"):
        aiortc_compat.require_instance_attrs(object(), aiortc_compat.SENDER_INSTANCE_ATTRS)
