"""The command-key handshake between console and patient node (pure: real certificates, no
Zenoh): who may agree a key, and that nothing but the two ends learns it."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pytest

from telesurgery.errors import AuthError
from telesurgery.messages import KeyAccept, KeyOffer, Message
from telesurgery.security.handshake import (
    IDENTITY_LIVE_S,
    MAX_BINDINGS,
    Credentials,
    Initiator,
    Responder,
    check_certificate,
)
from telesurgery.security.pki import Identity, Pki, Role

from .conftest import make_pki

SESSION = "or1"
CONSOLE, PATIENT = 0xC0, 0xBA


def _creds(pki: Pki, role: Role, name: str) -> Credentials:
    return Credentials.load(pki.identity(role, name), pki.crl_path)


def _offer(initiator: Initiator) -> Message:
    return Message(initiator.console_session, 1, 1, initiator.offer())


def _accept_msg(accept: KeyAccept) -> Message:
    return Message(PATIENT, 1, 2, accept)


def test_both_ends_agree_one_key_and_know_who_the_other_is(site_pki: Pki) -> None:
    console = Initiator(_creds(site_pki, Role.SURGEON, "dr-rossi"), SESSION, CONSOLE)
    patient = Responder(_creds(site_pki, Role.ROBOT, "patient"), SESSION, PATIENT)
    agreement = patient.answer(_offer(console))
    key, name = console.complete(_accept_msg(agreement.accept))
    assert key == agreement.key
    assert len(key) == 32
    assert name == "robot:patient"
    assert agreement.common_name == "surgeon:dr-rossi"
    # The offer sent again (the console resends until answered) keeps the same key.
    assert patient.answer(_offer(console)).key == key
    assert patient.bound_to(CONSOLE) is agreement
    # A new handshake of the same console session is refused: the id is bound to the
    # first offer (below); a console that restarts comes back under a new session id.
    again = Initiator(_creds(site_pki, Role.SURGEON, "dr-rossi"), SESSION, CONSOLE + 1)
    assert patient.answer(_offer(again), now_ns=10**18).key != key


def test_backup_may_agree_a_key_observer_recorder_and_router_may_not(site_pki: Pki) -> None:
    patient = Responder(_creds(site_pki, Role.ROBOT, "patient"), SESSION, PATIENT)
    patient.answer(_offer(Initiator(_creds(site_pki, Role.BACKUP, "bedside"), SESSION, 1)))
    for role, name in ((Role.OBSERVER, "obs1"), (Role.RECORDER, "rec"), (Role.ROUTER, "r1"),
                       (Role.ROBOT, "patient")):
        with pytest.raises(AuthError) as info:
            patient.answer(_offer(Initiator(_creds(site_pki, role, name), SESSION, 2)))
        assert info.value.reason == "role"


def test_certificate_of_another_ca_is_refused(site_pki: Pki, other_pki: Pki) -> None:
    patient = Responder(_creds(site_pki, Role.ROBOT, "patient"), SESSION, PATIENT)
    stranger = Initiator(_creds(other_pki, Role.SURGEON, "dr-rossi"), SESSION, CONSOLE)
    with pytest.raises(AuthError) as info:
        patient.answer(_offer(stranger))
    assert info.value.reason == "unknown_ca"
    # Nor does a console accept an answer from another site's robot.
    console = Initiator(_creds(site_pki, Role.SURGEON, "dr-rossi"), SESSION, CONSOLE)
    fake = Responder(_creds(other_pki, Role.ROBOT, "patient"), SESSION, PATIENT)
    other_side = Initiator(_creds(other_pki, Role.SURGEON, "dr-rossi"), SESSION, CONSOLE)
    with pytest.raises(AuthError) as info:
        console.complete(_accept_msg(fake.answer(_offer(other_side)).accept))
    assert info.value.reason == "unknown_ca"


def test_names_outside_the_roster_are_refused(site_pki: Pki) -> None:
    patient = Responder(_creds(site_pki, Role.ROBOT, "patient"), SESSION, PATIENT,
                        {Role.SURGEON: ["surgeon:dr-bianchi"]})
    with pytest.raises(AuthError) as info:
        patient.answer(_offer(Initiator(_creds(site_pki, Role.SURGEON, "dr-rossi"),
                                        SESSION, CONSOLE)))
    assert info.value.reason == "not_in_roster"
    patient.answer(_offer(Initiator(_creds(site_pki, Role.SURGEON, "dr-bianchi"),
                                    SESSION, CONSOLE)))


def test_revocation_is_read_again_while_running(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    console_creds = _creds(pki, Role.SURGEON, "dr-bianchi")
    patient_creds = _creds(pki, Role.ROBOT, "patient")
    patient = Responder(patient_creds, SESSION, PATIENT)
    console = Initiator(console_creds, SESSION, CONSOLE)
    patient.answer(_offer(console))
    pki.revoke(Role.SURGEON, "dr-bianchi")
    assert patient_creds.revoked.refresh()
    # Even the offer answered before is refused now, and so is any new one.
    for initiator in (console, Initiator(console_creds, SESSION, CONSOLE + 1),
                      Initiator(console_creds, SESSION, CONSOLE + 2)):
        with pytest.raises(AuthError) as info:
            patient.answer(_offer(initiator))
        assert info.value.reason == "revoked"
    assert not patient_creds.revoked.refresh()  # unchanged file: nothing to do


def test_forged_signatures_and_swapped_keys_are_refused(site_pki: Pki) -> None:
    rossi = _creds(site_pki, Role.SURGEON, "dr-rossi")
    patient = Responder(_creds(site_pki, Role.ROBOT, "patient"), SESSION, PATIENT)
    console = Initiator(rossi, SESSION, CONSOLE)
    offer = console.offer()
    # A router puts its own ephemeral key under the console's signature.
    swapped = KeyOffer(bytes(range(32)), offer.certificate, offer.signature)
    # Or claims the offer for another console session.
    for msg in (Message(CONSOLE, 1, 1, swapped), Message(CONSOLE + 1, 1, 1, offer)):
        with pytest.raises(AuthError) as info:
            patient.answer(msg)
        assert info.value.reason == "signature"
    # The same on the way back: the patient's answer with another ephemeral key.
    accept = patient.answer(_offer(console)).accept
    with pytest.raises(AuthError) as info:
        console.complete(_accept_msg(replace(accept, ephemeral=bytes(range(1, 33)))))
    assert info.value.reason == "signature"


def test_an_old_answer_does_not_complete_a_new_handshake(site_pki: Pki) -> None:
    rossi = _creds(site_pki, Role.SURGEON, "dr-rossi")
    patient = Responder(_creds(site_pki, Role.ROBOT, "patient"), SESSION, PATIENT)
    first = Initiator(rossi, SESSION, CONSOLE)
    old_accept = patient.answer(_offer(first)).accept
    second = Initiator(rossi, SESSION, CONSOLE)
    with pytest.raises(AuthError) as info:
        second.complete(_accept_msg(old_accept))
    assert info.value.reason == "signature"
    # An answer meant for another console is not ours.
    with pytest.raises(AuthError) as info:
        Initiator(rossi, SESSION, CONSOLE + 5).complete(_accept_msg(old_accept))
    assert info.value.reason == "not_ours"


def test_expired_and_malformed_certificates_are_refused(site_pki: Pki) -> None:
    creds = _creds(site_pki, Role.ROBOT, "patient")
    rossi = _creds(site_pki, Role.SURGEON, "dr-rossi")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    with pytest.raises(AuthError) as info:
        check_certificate(rossi.certificate, creds, {Role.SURGEON}, now=later)
    assert info.value.reason == "expired"
    with pytest.raises(AuthError) as info:
        check_certificate(b"\x30\x03junk", creds, {Role.SURGEON})
    assert info.value.reason == "bad_certificate"


def test_identity_files_load_as_credentials(site_pki: Pki) -> None:
    ident = site_pki.identity(Role.SURGEON, "dr-rossi")
    creds = Credentials.load(Identity.from_dir(ident.certificate.parent))
    assert creds.common_name == "surgeon:dr-rossi"
    assert not creds.revoked.serials


def test_a_session_id_stays_bound_to_the_offer_that_first_agreed_its_key(
        site_pki: Pki) -> None:
    """The squatting attack (issue 9, D1): a surgeon's certificate reads the bedside
    console's session id on control/owner and offers a key under it."""
    patient = Responder(_creds(site_pki, Role.ROBOT, "patient"), SESSION, PATIENT)
    bedside = Initiator(_creds(site_pki, Role.BACKUP, "bedside"), SESSION, CONSOLE)
    bound = patient.answer(_offer(bedside), now_ns=0)
    squatters = (Initiator(_creds(site_pki, Role.SURGEON, "dr-rossi"), SESSION, CONSOLE),
                 # Even the same certificate with another ephemeral key (a stolen copy).
                 Initiator(_creds(site_pki, Role.BACKUP, "bedside"), SESSION, CONSOLE))
    for squatter in squatters:
        with pytest.raises(AuthError) as info:
            patient.answer(_offer(squatter), now_ns=10**12)
        assert info.value.reason == "session_taken"
    assert patient.bound_to(CONSOLE) is bound
    # Long after, the bedside's own offer (its keep-alive) still gets its key back.
    assert patient.answer(_offer(bedside), now_ns=10**13) is bound


def test_one_session_per_certificate_while_it_runs_then_a_restart_replaces_it(
        site_pki: Pki) -> None:
    rossi = _creds(site_pki, Role.SURGEON, "dr-rossi")
    patient = Responder(_creds(site_pki, Role.ROBOT, "patient"), SESSION, PATIENT)
    first = Initiator(rossi, SESSION, CONSOLE)
    patient.answer(_offer(first), now_ns=0)
    live_ns = round(IDENTITY_LIVE_S * 1e9)
    patient.answer(_offer(first), now_ns=live_ns)  # a keep-alive
    second = Initiator(rossi, SESSION, CONSOLE + 1)
    with pytest.raises(AuthError) as info:
        patient.answer(_offer(second), now_ns=2 * live_ns)
    assert info.value.reason == "identity_in_use"
    # Another certificate is not held up by it.
    patient.answer(_offer(Initiator(_creds(site_pki, Role.SURGEON, "dr-bianchi"), SESSION,
                                    CONSOLE + 2)), now_ns=2 * live_ns)
    # The first console went quiet (it stopped): the new session replaces it, and the old
    # one's offer is refused from then on.
    replaced = patient.answer(_offer(second), now_ns=2 * live_ns + 1)
    assert replaced.console_session == CONSOLE + 1
    with pytest.raises(AuthError) as info:
        patient.answer(_offer(first), now_ns=2 * live_ns + 2)
    assert info.value.reason == "superseded"


def test_many_sessions_forget_retired_ids_first(site_pki: Pki) -> None:
    rossi = _creds(site_pki, Role.SURGEON, "dr-rossi")
    patient = Responder(_creds(site_pki, Role.ROBOT, "patient"), SESSION, PATIENT,
                        live_s=0.0)
    bedside = patient.answer(_offer(Initiator(_creds(site_pki, Role.BACKUP, "bedside"),
                                              SESSION, 1)), now_ns=0)
    # One at a time (each replacing the last), more than MAX_BINDINGS sessions of one
    # certificate: the retired ids are forgotten, the bedside's binding stays.
    offers = [_offer(Initiator(rossi, SESSION, 100 + i)) for i in range(MAX_BINDINGS + 5)]
    for i, offer in enumerate(offers):
        patient.answer(offer, now_ns=i + 1)
    assert patient.bound_to(1) is bedside
    assert patient.bound_to(100 + MAX_BINDINGS + 4) is not None
    assert patient.bound_to(100) is None
