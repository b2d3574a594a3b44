<?php
$apiUrl = "https://mail-api.solutechhub.com/api/v1";
$token = "your-token-here";
$email = "user@yourdomain.com";
$ch = curl_init();
curl_setopt($ch, CURLOPT_URL, "$apiUrl/mailbox/$email/messages?folder=INBOX&limit=20");
curl_setopt($ch, CURLOPT_RETURNTRANSFER, true);
curl_setopt($ch, CURLOPT_HTTPHEADER, ["X-MAILAPI-TOKEN: $token"]);
$response = curl_exec($ch);
curl_close($ch);
$data = json_decode($response, true);
foreach ($data['messages'] as $msg) {
    echo "{$msg['subject']} - {$msg['from']['email']}\n";
}
