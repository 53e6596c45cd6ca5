"""A batch's payout files: a CSV and an ISO 20022 pain.001.001.09 credit transfer initiation.

Built from the batch's own fields only (its id is the message, payment and end-to-end id; its
creation time the message's), so building again gives the same bytes. The XML is built with lxml
and checked against the schema (settlements/schemas/pain.001.001.09.xsd, the ISO 20022 XSD as
shipped by sepaxml) before it is stored: an invalid file is never offered to a bank.
"""

import csv
import datetime as dt
import functools
import io
from collections.abc import Callable
from pathlib import Path

from lxml import etree

from pgi.money import quantize

PAIN_001 = "pain.001.001.09"
NAMESPACE = f"urn:iso:std:iso:20022:tech:xsd:{PAIN_001}"
SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / f"{PAIN_001}.xsd"
CSV_HEADER = (
    "batch_id", "merchant", "payee_name", "payee_iban", "payee_bic", "currency", "amount",
    "payout_date", "cutoff", "reference",
)


class InvalidPayoutFile(ValueError):
    """The XML does not validate against its schema (the message says where)."""


@functools.cache
def pain_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMA_PATH)))


def remittance(batch) -> str:
    return f"PGI settlement {batch.id} to {batch.cutoff.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"


def payout_csv(batch) -> bytes:
    """One row: the transfer, as a banking system's bulk import takes it (UTF-8, comma, CRLF)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    writer.writerow([
        batch.id, batch.merchant.code, batch.payee_name, batch.payee_iban, batch.payee_bic, batch.currency,
        str(quantize(batch.net_amount, batch.currency)), batch.payout_date.isoformat(),
        batch.cutoff.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"), remittance(batch),
    ])
    return out.getvalue().encode("utf-8")


def _el(parent, tag: str, text: str | None = None, **attrs) -> etree._Element:
    element = etree.SubElement(parent, f"{{{NAMESPACE}}}{tag}", **attrs)
    if text is not None:
        element.text = text
    return element


def _agent(parent, tag: str, bic: str) -> None:
    institution = _el(_el(parent, tag), "FinInstnId")
    if bic:
        _el(institution, "BICFI", bic)
    else:
        _el(_el(institution, "Othr"), "Id", "NOTPROVIDED")


def _account(parent, tag: str, iban: str) -> None:
    _el(_el(_el(parent, tag), "Id"), "IBAN", iban)


def payout_pain001(batch, config: dict) -> bytes:
    """One credit transfer from the bank's account (PGI_SETTLEMENT debtor_*) to the merchant's.
    SEPA service level for EUR; other currencies go as plain transfers, charges shared."""
    amount = str(quantize(batch.net_amount, batch.currency))
    # ISODateTime with its offset (UTC): without one a bank reads it in its own local time.
    created = batch.created_at.astimezone(dt.UTC).replace(microsecond=0).isoformat()
    root = etree.Element(f"{{{NAMESPACE}}}Document", nsmap={None: NAMESPACE})
    initiation = _el(root, "CstmrCdtTrfInitn")
    header = _el(initiation, "GrpHdr")
    _el(header, "MsgId", batch.id)
    _el(header, "CreDtTm", created)
    _el(header, "NbOfTxs", "1")
    _el(header, "CtrlSum", amount)
    _el(_el(header, "InitgPty"), "Nm", config["debtor_name"][:140])
    info = _el(initiation, "PmtInf")
    _el(info, "PmtInfId", batch.id)
    _el(info, "PmtMtd", "TRF")
    _el(info, "BtchBookg", "false")
    _el(info, "NbOfTxs", "1")
    _el(info, "CtrlSum", amount)
    sepa = batch.currency == "EUR"
    if sepa:
        _el(_el(_el(info, "PmtTpInf"), "SvcLvl"), "Cd", "SEPA")
    _el(_el(info, "ReqdExctnDt"), "Dt", batch.payout_date.isoformat())
    _el(_el(info, "Dbtr"), "Nm", config["debtor_name"][:140])
    _account(info, "DbtrAcct", config["debtor_iban"])
    _agent(info, "DbtrAgt", config["debtor_bic"])
    _el(info, "ChrgBr", "SLEV" if sepa else "SHAR")
    transfer = _el(info, "CdtTrfTxInf")
    payment_id = _el(transfer, "PmtId")
    _el(payment_id, "InstrId", batch.id)
    _el(payment_id, "EndToEndId", batch.id)
    _el(_el(transfer, "Amt"), "InstdAmt", amount, Ccy=batch.currency)
    if batch.payee_bic:
        _agent(transfer, "CdtrAgt", batch.payee_bic)
    # SEPA's rulebook allows 70 characters for a name, where the schema allows 140.
    _el(_el(transfer, "Cdtr"), "Nm", batch.payee_name[: 70 if sepa else 140])
    _account(transfer, "CdtrAcct", batch.payee_iban)
    _el(_el(transfer, "RmtInf"), "Ustrd", remittance(batch)[:140])
    content = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    pain_validate(content)
    return content


def pain_validate(content: bytes) -> None:
    """Raises InvalidPayoutFile unless `content` is a valid pain.001.001.09 document."""
    schema = pain_schema()
    document = etree.fromstring(content)
    if not schema.validate(document):
        raise InvalidPayoutFile(str(schema.error_log.last_error))


def payout_file_builders(batch, config: dict) -> dict[str, tuple[str, Callable[[], bytes]]]:
    """{kind: (file name, build)} for the batch's payout files."""
    return {
        "csv": (f"{batch.id}.csv", lambda: payout_csv(batch)),
        "pain001": (f"{batch.id}.{PAIN_001}.xml", lambda: payout_pain001(batch, config)),
    }
