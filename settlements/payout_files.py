"""A batch's payout files: a CSV and an ISO 20022 pain.001.001.09 credit transfer initiation.

Built from the batch's own fields only (its id is the message, payment and end-to-end id; its
creation time the message's; its payee and debtor accounts), so building again gives the same
bytes. Names and remittance text go into the XML in the SEPA character set (sepa.sepa_text), and
into the CSV with formula-like cells neutralised (sepa.csv_text). The XML is built with lxml
and checked against the schema (settlements/schemas/pain.001.001.09.xsd, the ISO 20022 XSD as
shipped by sepaxml) before it is stored: an invalid file is never offered to a bank.
"""

import csv
import datetime as dt
import functools
import io
from decimal import Decimal
from collections.abc import Callable
from pathlib import Path

from lxml import etree

from pgi.money import quantize

from .sepa import csv_text, in_sepa_scheme, sepa_text

PAIN_001 = "pain.001.001.09"
NAMESPACE = f"urn:iso:std:iso:20022:tech:xsd:{PAIN_001}"
SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / f"{PAIN_001}.xsd"
CSV_HEADER = (
    "batch_id", "merchant", "payee_name", "payee_iban", "payee_bic", "currency", "amount",
    "payout_date", "cutoff", "reference",
)


# The SEPA credit transfer rulebook's largest amount of one transfer.
SEPA_MAX_AMOUNT = Decimal("999999999.99")


class InvalidPayoutFile(ValueError):
    """The XML does not validate against its schema (the message says where), or breaks a rule of
    the scheme the schema does not hold."""


class NoPayeeBic(InvalidPayoutFile):
    """A transfer outside SEPA names the payee's bank by its BIC, and the batch has none."""


@functools.cache
def pain_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMA_PATH)))


def remittance(batch) -> str:
    """`PGI settlement <id> to <cut-off> UTC`: the cut-off to the minute, with its seconds unless :00."""
    cutoff = batch.cutoff.astimezone(dt.UTC).replace(microsecond=0)
    return f"PGI settlement {batch.id} to {cutoff:%Y-%m-%d %H:%M}{f':{cutoff:%S}' if cutoff.second else ''} UTC"


def payout_csv(batch) -> bytes:
    """One row: the transfer, as a banking system's bulk import takes it (UTF-8, comma, CRLF)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    writer.writerow([
        batch.id, batch.merchant.code, csv_text(batch.payee_name), batch.payee_iban, batch.payee_bic, batch.currency,
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


def is_sepa(batch) -> bool:
    """A SEPA credit transfer: in euro, to an account in a country of the SEPA scheme."""
    return batch.currency == "EUR" and in_sepa_scheme(batch.payee_iban)


def payout_pain001(batch) -> bytes:
    """One credit transfer from the bank's account (the batch's debtor_*) to the merchant's.
    SEPA (service level SEPA, charges SLEV) for euro to a SEPA country; anything else goes as a
    plain transfer, charges shared, naming the payee's bank by its BIC (NoPayeeBic without one).
    Names and remittance in the SEPA character set, at most 70 and 140 characters (SEPA's limits,
    kept for every transfer: the schema would allow 140 for a name)."""
    amount = str(quantize(batch.net_amount, batch.currency))
    sepa = is_sepa(batch)
    if not sepa and not batch.payee_bic:
        raise NoPayeeBic(
            f"A transfer outside SEPA ({batch.currency} to a {batch.payee_iban[:2]} account) needs the payee's BIC: "
            "set the merchant's settlement BIC."
        )
    if sepa and batch.net_amount > SEPA_MAX_AMOUNT:
        raise InvalidPayoutFile(f"{amount} EUR is more than a SEPA credit transfer carries ({SEPA_MAX_AMOUNT}).")
    payee, debtor = sepa_text(batch.payee_name, 70), sepa_text(batch.debtor_name, 70)
    if not payee or not debtor:
        raise InvalidPayoutFile(
            f"The {'payee' if not payee else 'debtor'}'s name has no character of the SEPA character set."
        )
    # ISODateTime with its offset (UTC): without one a bank reads it in its own local time.
    created = batch.created_at.astimezone(dt.UTC).replace(microsecond=0).isoformat()
    root = etree.Element(f"{{{NAMESPACE}}}Document", nsmap={None: NAMESPACE})
    initiation = _el(root, "CstmrCdtTrfInitn")
    header = _el(initiation, "GrpHdr")
    _el(header, "MsgId", batch.id)
    _el(header, "CreDtTm", created)
    _el(header, "NbOfTxs", "1")
    _el(header, "CtrlSum", amount)
    _el(_el(header, "InitgPty"), "Nm", debtor)
    info = _el(initiation, "PmtInf")
    _el(info, "PmtInfId", batch.id)
    _el(info, "PmtMtd", "TRF")
    _el(info, "BtchBookg", "false")
    _el(info, "NbOfTxs", "1")
    _el(info, "CtrlSum", amount)
    if sepa:
        _el(_el(_el(info, "PmtTpInf"), "SvcLvl"), "Cd", "SEPA")
    _el(_el(info, "ReqdExctnDt"), "Dt", batch.payout_date.isoformat())
    _el(_el(info, "Dbtr"), "Nm", debtor)
    _account(info, "DbtrAcct", batch.debtor_iban)
    _agent(info, "DbtrAgt", batch.debtor_bic)
    _el(info, "ChrgBr", "SLEV" if sepa else "SHAR")
    transfer = _el(info, "CdtTrfTxInf")
    payment_id = _el(transfer, "PmtId")
    _el(payment_id, "InstrId", batch.id)
    _el(payment_id, "EndToEndId", batch.id)
    _el(_el(transfer, "Amt"), "InstdAmt", amount, Ccy=batch.currency)
    if batch.payee_bic:
        _agent(transfer, "CdtrAgt", batch.payee_bic)
    _el(_el(transfer, "Cdtr"), "Nm", payee)
    _account(transfer, "CdtrAcct", batch.payee_iban)
    _el(_el(transfer, "RmtInf"), "Ustrd", sepa_text(remittance(batch), 140))
    content = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    pain_validate(content)
    return content


def pain_validate(content: bytes) -> None:
    """Raises InvalidPayoutFile unless `content` is a valid pain.001.001.09 document."""
    schema = pain_schema()
    document = etree.fromstring(content)
    if not schema.validate(document):
        raise InvalidPayoutFile(str(schema.error_log.last_error))


def payout_file_builders(batch) -> dict[str, tuple[str, Callable[[], bytes]]]:
    """{kind: (file name, build)} for the batch's payout files."""
    return {
        "csv": (f"{batch.id}.csv", lambda: payout_csv(batch)),
        "pain001": (f"{batch.id}.{PAIN_001}.xml", lambda: payout_pain001(batch)),
    }
