# The spec's section 1 example ("Example - Python"), verbatim except API_URL and TOKEN, which the
# test fills in from the environment.
import os
import requests
import base64
API_URL = os.environ["EXAMPLE_API_URL"]
TOKEN = os.environ["EXAMPLE_TOKEN"]
# Read and encode attachment
with open("document.pdf", "rb") as f:
    attachment_content = base64.b64encode(f.read()).decode()
email_data = {
"from": "sender@yourdomain.com",
"to": ["recipient@example.com"],
"subject": "Invoice Attached",
"body": {
"text": "Please find the invoice attached.",
"html": "<p>Please find the invoice attached.</p>"
},
"attachments": [
{
"filename": "invoice.pdf",
"content": attachment_content,
"content_type": "application/pdf"
}
]
}
response = requests.post(
f"{API_URL}/mail/send",
json=email_data,
headers={"X-MAILAPI-TOKEN": TOKEN}
)
result = response.json()
print(f"Message ID: {result['message_id']}")
