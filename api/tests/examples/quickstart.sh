curl -X GET "https://mail-api.solutechhub.com/api/v1/mail/sent" \
-H "X-MAILAPI-TOKEN: your-token-here"
