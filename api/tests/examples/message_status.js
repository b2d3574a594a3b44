const axios = require('axios');
const API_URL = 'https://mail-api.solutechhub.com/api/v1';
const TOKEN = 'your-token-here';
const MESSAGE_ID = '550e8400-e29b-41d4-a716-446655440000';
axios.get(`${API_URL}/mail/${MESSAGE_ID}/status`, {
headers: { 'X-MAILAPI-TOKEN': TOKEN }
})
.then(response => {
const { status, recipients } = response.data;
console.log(`Overall status: ${status}`);
recipients.forEach(r => {
console.log(` ${r.email}: ${r.status}`);
});
});
