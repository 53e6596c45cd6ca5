"""Adyen's refusal reasons and request error codes onto PGI's ErrorCode, and the resultCodes PGI
cannot complete."""

from ..base import ErrorCode

# refusalReasonCode -> (normalized code, Adyen's refusalReason text), from Adyen's refusal reasons
# page. The text is also what an AUTHORISATION notification carries in `reason` when it failed.
REFUSAL_REASONS: dict[str, tuple[ErrorCode, str]] = {
    "2": (ErrorCode.DECLINED, "Refused"),
    "3": (ErrorCode.DECLINED, "Referral"),
    "4": (ErrorCode.GATEWAY_ERROR, "Acquirer Error"),
    "5": (ErrorCode.INVALID_ACCOUNT, "Blocked Card"),
    "6": (ErrorCode.CARD_EXPIRED, "Expired Card"),
    "7": (ErrorCode.INVALID_REQUEST, "Invalid Amount"),
    "8": (ErrorCode.INVALID_ACCOUNT, "Invalid Card Number"),
    "9": (ErrorCode.GATEWAY_ERROR, "Issuer Unavailable"),
    "10": (ErrorCode.DECLINED, "Not supported"),
    "11": (ErrorCode.AUTHENTICATION_REQUIRED, "3D Not Authenticated"),
    "12": (ErrorCode.INSUFFICIENT_FUNDS, "Not enough balance"),
    "14": (ErrorCode.FRAUD_SUSPECTED, "Acquirer Fraud"),
    "15": (ErrorCode.DECLINED, "Cancelled"),
    "16": (ErrorCode.DECLINED, "Shopper Cancelled"),
    "17": (ErrorCode.DECLINED, "Invalid Pin"),
    "18": (ErrorCode.DECLINED, "Pin tries exceeded"),
    "19": (ErrorCode.DECLINED, "Pin validation not possible"),
    "20": (ErrorCode.FRAUD_SUSPECTED, "FRAUD"),
    "21": (ErrorCode.GATEWAY_ERROR, "Not Submitted"),
    "22": (ErrorCode.FRAUD_SUSPECTED, "FRAUD-CANCELLED"),
    "23": (ErrorCode.DECLINED, "Transaction Not Permitted"),
    "24": (ErrorCode.DECLINED, "CVC Declined"),
    "25": (ErrorCode.DECLINED, "Restricted Card"),
    # The shopper withdrew the permission to charge the stored card: do not use the token again.
    "26": (ErrorCode.INVALID_ACCOUNT, "Revocation Of Auth"),
    "27": (ErrorCode.DECLINED, "Declined Non Generic"),
    "28": (ErrorCode.LIMIT_EXCEEDED, "Withdrawal amount exceeded"),
    "29": (ErrorCode.LIMIT_EXCEEDED, "Withdrawal count exceeded"),
    "31": (ErrorCode.FRAUD_SUSPECTED, "Issuer Suspected Fraud"),
    "32": (ErrorCode.DECLINED, "AVS Declined"),
    "33": (ErrorCode.AUTHENTICATION_REQUIRED, "Card requires online pin"),
    "34": (ErrorCode.INVALID_ACCOUNT, "No checking account available on Card"),
    "35": (ErrorCode.INVALID_ACCOUNT, "No savings account available on Card"),
    "36": (ErrorCode.AUTHENTICATION_REQUIRED, "Mobile pin required"),
    "37": (ErrorCode.DECLINED, "Contactless fallback"),
    "38": (ErrorCode.AUTHENTICATION_REQUIRED, "Authentication required"),
    "39": (ErrorCode.AUTHENTICATION_REQUIRED, "RReq not received from DS"),
    "40": (ErrorCode.DECLINED, "Current AID is in Penalty Box"),
    "41": (ErrorCode.AUTHENTICATION_REQUIRED, "CVM Required Restart Payment"),
    "42": (ErrorCode.AUTHENTICATION_REQUIRED, "3DS Authentication Error"),
    "43": (ErrorCode.AUTHENTICATION_REQUIRED, "Online PIN required"),
    "44": (ErrorCode.DECLINED, "Try another interface"),
    "45": (ErrorCode.DECLINED, "Chip downgrade mode"),
    "46": (ErrorCode.DECLINED, "Transaction blocked by Adyen to prevent excessive retry fees"),
}
REFUSAL_BY_TEXT = {text.lower(): code for code, text in REFUSAL_REASONS.values()}

# Adyen errorCode of a 400/422 answer -> normalized code; any other refused request is
# INVALID_REQUEST. 704 is not here: it means "in progress", see _call.
REQUEST_ERRORS = {
    "101": ErrorCode.INVALID_ACCOUNT,  # Invalid card number
    "800": ErrorCode.INVALID_ACCOUNT,  # Contract not found
    "803": ErrorCode.INVALID_ACCOUNT,  # PaymentDetail not found (unknown stored payment method)
    "905": ErrorCode.INVALID_ACCOUNT,  # Payment details are not supported
}
IN_PROGRESS_ERROR = "704"  # "request already processed or in progress" for a repeated Idempotency-Key

# resultCodes that want the shopper in front of a browser or an app: PGI cannot do that.
SHOPPER_ACTIONS = {"RedirectShopper", "IdentifyShopper", "ChallengeShopper", "PresentToShopper"}
