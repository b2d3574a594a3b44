const axios = require('axios');
const API_URL = 'https://mail-api.solutechhub.com/api/v1';
const TOKEN = 'your-token-here';
const headers = { 'X-MAILAPI-TOKEN': TOKEN };
axios.get(`${API_URL}/mail/sent`, { headers })
.then(response => console.log(response.data))
.catch(error => console.error(error));
