import requests

API_URL = "https://mail-api.solutechhub.com/api/v1"
TOKEN = "your-token-here"
email = "user@yourdomain.com"
uid = 1234
attachment_index = 0

response = requests.get(
    f"{API_URL}/mailbox/{email}/messages/{uid}/attachment/{attachment_index}",
    headers={"X-MAILAPI-TOKEN": TOKEN}
)

# Get filename from Content-Disposition header
filename = response.headers.get('Content-Disposition', '').split('filename=')[-1].strip('"')
with open(filename or "attachment", "wb") as f:
    f.write(response.content)
