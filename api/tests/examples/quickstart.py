import requests
API_URL = "https://mail-api.solutechhub.com/api/v1"
TOKEN = "your-token-here"
headers = {"X-MAILAPI-TOKEN": TOKEN}
response = requests.get(f"{API_URL}/mail/sent", headers=headers)
print(response.json())
