import requests

def send_email(data):
    response = requests.post(
        f"{API_URL}/mail/send",
        json=data,
        headers={"X-MAILAPI-TOKEN": TOKEN}
    )
    result = response.json()
    if not result.get("success", False):
        error_code = result.get("error", "UNKNOWN")
        error_message = result.get("message", "Unknown error")
        if error_code == "DOMAIN_NOT_ALLOWED":
            print(f"Error: {error_message}")
            print("Please use an email address from an allowed domain.")
        elif error_code == "INVALID_TOKEN":
            print("Error: Your API token is invalid.")
        else:
            print(f"Error ({error_code}): {error_message}")
        return None
    return result
