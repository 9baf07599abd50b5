# The admin's dates and times: with seconds and the zone, one spelling everywhere (Asia/Seoul,
# TIME_ZONE; "KST" is +09:00, the offset the logs and the ledger write).
DATETIME_FORMAT = SHORT_DATETIME_FORMAT = "Y-m-d H:i:s T"
DATE_FORMAT = SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
