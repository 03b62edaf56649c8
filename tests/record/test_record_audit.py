"""The audit trail: intact trails verify; each kind of tampering is found, with its record."""

from __future__ import annotations

import base64
import itertools
import json
import math
import threading
from pathlib import Path
from typing import Any

import pytest
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from telesurgery.cli import audit as audit_cli
from telesurgery.errors import ConfigError, RecordingError
from telesurgery.record.audit import (
    SIGNATURE_CONTEXT,
    AuditKind,
    AuditRecord,
    AuditVerifier,
    AuditWriter,
    TrailReport,
    fingerprint,
)

KINDS = [AuditKind.CONTROL_OWNER, AuditKind.ENGAGE, AuditKind.CLUTCH, AuditKind.HOLD,
         AuditKind.HANDOVER_REQUEST, AuditKind.HANDOVER, AuditKind.ESTOP,
         AuditKind.SAFETY_REJECTIONS_SUMMARY, AuditKind.LINK_ALARM]
N_RECORDS = len(KINDS) + 2  # with session_start and session_stop


@pytest.fixture
def trail(tmp_path: Path) -> tuple[Path, AuditWriter]:
    """A closed trail of one patient-node run: indices 0 (start) to 10 (stop)."""
    writer = AuditWriter(tmp_path, "patient", "or1", start_data={"arms": ["psm1", "psm2"]})
    for i, kind in enumerate(KINDS):
        writer.append(kind, {"owner": "surgeon:dr-rossi", "step": i, "latency_ms": 98.4})
    writer.close({"reason": "operation finished"})
    return tmp_path, writer


def lines(writer: AuditWriter) -> list[dict[str, Any]]:
    return [json.loads(line) for line in writer.path.read_text().splitlines()]


def rewrite(writer: AuditWriter, records: list[dict[str, Any]]) -> None:
    writer.path.write_text("".join(json.dumps(r) + "\n" for r in records))


def resign(obj: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """What someone holding ``key`` makes of an edited record: a fresh hash and signature."""
    rec = AuditRecord.from_json({**obj, "hash": "", "signature": ""})
    digest = rec.digest()
    sig = key.sign(SIGNATURE_CONTEXT + bytes.fromhex(digest))
    return {**obj, "hash": digest, "signature": base64.b64encode(sig).decode()}


def verify(session_dir: Path, **kw: Any) -> TrailReport:
    (report,) = AuditVerifier(**kw).verify_dir(session_dir)
    return report


def problems(report: TrailReport) -> list[tuple[int | None, str]]:
    return [(f.index, f.problem) for f in report.findings]


def run_cli(*args: str) -> Any:
    app = typer.Typer()
    audit_cli.register(app)
    return CliRunner().invoke(app, ["audit", "verify", *args])


def test_an_intact_trail_verifies(trail: tuple[Path, AuditWriter]) -> None:
    session_dir, writer = trail
    report = verify(session_dir, trusted=[writer.fingerprint])
    assert report.ok, problems(report)
    assert (report.records, report.closed, report.node) == (N_RECORDS, True, "patient")
    assert report.fingerprint == writer.fingerprint
    records = lines(writer)
    assert [r["index"] for r in records] == list(range(N_RECORDS))
    assert [r["kind"] for r in records] == ["session_start", *KINDS, "session_stop"]
    assert records[0]["data"]["fingerprint"] == writer.fingerprint
    assert records[0]["data"]["arms"] == ["psm1", "psm2"]
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(records))
    result = run_cli(str(session_dir))
    assert result.exit_code == 0
    assert result.output.startswith(f"OK: {N_RECORDS} records in 1 trail(s)")
    assert len(result.output.splitlines()) == 1


def test_an_edited_field_is_found(trail: tuple[Path, AuditWriter]) -> None:
    session_dir, writer = trail
    records = lines(writer)
    records[4]["data"]["owner"] = "surgeon:someone-else"
    rewrite(writer, records)
    assert problems(verify(session_dir)) == [
        (4, "content does not match its hash: the record was edited")]
    result = run_cli(str(session_dir))
    assert result.exit_code == 1
    assert "record 4 (line 5): content does not match its hash" in result.output
    assert result.output.splitlines()[-1].startswith("TAMPERED: 1 problem(s) in 1 of 1")


def test_an_edit_with_a_recomputed_hash_fails_its_signature(
        trail: tuple[Path, AuditWriter]) -> None:
    session_dir, writer = trail
    records = lines(writer)
    records[4]["kind"] = "clutch"
    forged = resign(records[4], Ed25519PrivateKey.generate())
    records[4]["hash"] = forged["hash"]  # the hash is right, the signature is the node's old one
    rewrite(writer, records)
    found = problems(verify(session_dir))
    assert found[0][0] == 4
    assert "signature does not verify" in found[0][1]
    assert found[1][0] == 5
    assert "prev_hash does not link" in found[1][1]


def test_a_changed_signature_is_found(trail: tuple[Path, AuditWriter]) -> None:
    session_dir, writer = trail
    records = lines(writer)
    records[7]["signature"] = records[6]["signature"]
    rewrite(writer, records)
    ((index, problem),) = problems(verify(session_dir))
    assert index == 7
    assert problem.startswith("signature does not verify with key SHA256:")


def test_a_removed_record_is_found(trail: tuple[Path, AuditWriter]) -> None:
    session_dir, writer = trail
    records = lines(writer)
    del records[5]
    rewrite(writer, records)
    assert problems(verify(session_dir)) == [
        (6, "record 5 is missing before it: removed")]


def test_reordered_records_are_found(trail: tuple[Path, AuditWriter]) -> None:
    session_dir, writer = trail
    records = lines(writer)
    records[5], records[6] = records[6], records[5]
    rewrite(writer, records)
    found = problems(verify(session_dir))
    assert (6, "comes before record 5: records were reordered") in found
    assert (5, "comes after record 6: records were reordered") in found
    assert {i for i, _ in found} == {5, 6, 7}  # 7 no longer links to the record before it


def test_an_inserted_forged_record_is_found(trail: tuple[Path, AuditWriter]) -> None:
    session_dir, writer = trail
    records = lines(writer)
    forged = resign({**records[5], "kind": "handover",
                     "data": {"from": "surgeon:dr-rossi", "to": "intruder"},
                     "prev_hash": records[4]["hash"]}, Ed25519PrivateKey.generate())
    records.insert(5, forged)
    rewrite(writer, records)
    found = problems(verify(session_dir))
    assert found[0][0] == 5
    assert "signature does not verify" in found[0][1]
    assert (5, "appears twice: a record was inserted or duplicated") in found


def test_a_cut_tail_is_found_unless_open_trails_are_allowed(
        trail: tuple[Path, AuditWriter]) -> None:
    session_dir, writer = trail
    rewrite(writer, lines(writer)[:-2])
    ((index, problem),) = problems(verify(session_dir))
    assert index == N_RECORDS - 3
    assert "ends here without session_stop" in problem
    assert verify(session_dir, allow_open=True).ok
    assert run_cli(str(session_dir), "--allow-open").exit_code == 0


def test_a_record_cut_mid_line_is_found(trail: tuple[Path, AuditWriter]) -> None:
    session_dir, writer = trail
    raw = writer.path.read_bytes()
    writer.path.write_bytes(raw[:-40])
    found = verify(session_dir).findings
    assert any(f.line == N_RECORDS and "incomplete" in f.problem for f in found)
    assert any("without session_stop" in f.problem for f in found)


def test_a_damaged_line_is_found(trail: tuple[Path, AuditWriter]) -> None:
    session_dir, writer = trail
    text = writer.path.read_text().splitlines()
    text[3] = text[3][:20]
    writer.path.write_text("\n".join(text) + "\n")
    found = verify(session_dir).findings
    assert found[0].line == 4
    assert "not valid JSON" in found[0].problem
    assert any(f.index == 4 and "record 3 is missing" in f.problem for f in found)


@pytest.mark.parametrize("bomb", ["[" * 5000, '{"data": ' + "[" * 900 + "]" * 900 + "}"])
def test_a_line_nested_too_deep_is_found_not_a_crash(trail: tuple[Path, AuditWriter],
                                                     bomb: str) -> None:
    session_dir, writer = trail
    text = writer.path.read_text().splitlines()
    text[3] = bomb
    writer.path.write_text("\n".join(text) + "\n")
    writer.key_path.write_text("[" * 5000)
    found = verify(session_dir).findings
    assert any(f.line == 0 and "unreadable" in f.problem for f in found)
    assert any(f.line == 4 and "not valid JSON (or nests too deep)" in f.problem for f in found)


def test_a_replaced_key_file_is_found(trail: tuple[Path, AuditWriter]) -> None:
    session_dir, writer = trail
    obj = json.loads(writer.key_path.read_text())
    other = Ed25519PrivateKey.generate().public_key()
    obj["public_key"] = base64.b64encode(other.public_bytes_raw()).decode()
    obj["fingerprint"] = fingerprint(other)
    writer.key_path.write_text(json.dumps(obj))
    found = problems(verify(session_dir))
    assert found[0] == (0, "the key file does not match the key announced in session_start: "
                           "the key file was replaced")


def test_a_whole_rewrite_under_a_new_key_is_caught_only_by_a_trusted_fingerprint(
        trail: tuple[Path, AuditWriter]) -> None:
    """The residual risk the module documents: the trail alone cannot tell; --trust can."""
    session_dir, writer = trail
    attacker = Ed25519PrivateKey.generate()
    public = attacker.public_key()
    public_b64 = base64.b64encode(public.public_bytes_raw()).decode()
    records = lines(writer)
    del records[5]
    prev = "0" * 64
    forged = []
    for i, original in enumerate(records):
        edited = {**original, "index": i, "prev_hash": prev}
        if i == 0:
            edited["data"] = {**edited["data"], "public_key": public_b64,
                              "fingerprint": fingerprint(public)}
        signed = resign(edited, attacker)
        prev = signed["hash"]
        forged.append(signed)
    rewrite(writer, forged)
    key = json.loads(writer.key_path.read_text())
    writer.key_path.write_text(json.dumps({**key, "public_key": public_b64,
                                           "fingerprint": fingerprint(public)}))
    assert verify(session_dir).ok
    found = problems(verify(session_dir, trusted=[writer.fingerprint]))
    assert found == [(None, f"signer {fingerprint(public)} is not among the trusted keys "
                            "(--trust)")]
    result = run_cli(str(session_dir), "--trust", writer.fingerprint)
    assert result.exit_code == 1


def test_appends_from_many_threads_form_one_valid_chain(tmp_path: Path) -> None:
    seen: list[int] = []
    writer = AuditWriter(tmp_path, "console", "or1", on_record=lambda r: seen.append(r.index))

    def append_many(n: int) -> None:
        for i in range(50):
            writer.append(AuditKind.CLUTCH, {"thread": n, "i": i})

    threads = [threading.Thread(target=append_many, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive(), f"{t.name} did not finish appending"
    writer.close()
    report = verify(tmp_path)
    assert report.ok, problems(report)
    assert report.records == 202
    assert sorted(seen) == list(range(202))


def test_a_record_is_on_disk_once_synced(tmp_path: Path) -> None:
    writer = AuditWriter(tmp_path, "backup", "or1")
    record = writer.append(AuditKind.HANDOVER, {"from": "surgeon", "to": "backup"})
    assert record is not None
    assert writer.sync(timeout=30.0)
    on_disk = lines(writer)
    assert on_disk[-1] == record.to_json()
    assert writer.head == (record.index, record.hash)
    writer.close()


def test_data_that_is_not_json_is_refused_and_the_chain_continues(tmp_path: Path) -> None:
    writer = AuditWriter(tmp_path, "patient", "or1")
    with pytest.raises(ConfigError, match="not plain JSON"):
        writer.append(AuditKind.LINK_ALARM, {"rtt_ms": math.nan})
    writer.append(AuditKind.LINK_ALARM, {"rtt_ms": 180.0})
    writer.close()
    report = verify(tmp_path)
    assert report.ok, problems(report)
    assert report.records == 3
    with pytest.raises(RecordingError, match="closed"):
        writer.append(AuditKind.HOLD)


def test_bad_names_and_missing_trails_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="node name 'patient/1'"):
        AuditWriter(tmp_path, "patient/1", "or1")
    with pytest.raises(RecordingError, match="no audit trail"):
        AuditVerifier().verify_dir(tmp_path)
