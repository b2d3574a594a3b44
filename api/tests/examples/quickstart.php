<?php
$apiUrl = "https://mail-api.solutechhub.com/api/v1";
$token = "your-token-here";
$ch = curl_init();
curl_setopt($ch, CURLOPT_URL, "$apiUrl/mail/sent");
curl_setopt($ch, CURLOPT_RETURNTRANSFER, true);
curl_setopt($ch, CURLOPT_HTTPHEADER, [
"X-MAILAPI-TOKEN: $token"
]);
$response = curl_exec($ch);
curl_close($ch);
$data = json_decode($response, true);
print_r($data);
