// Server-side events with the official OpenPanel Node SDK (@openpanel/sdk) and a client secret.
// Usage: node node-sdk.mjs <apiUrl> <clientId> <clientSecret> <runId>
// Prints one JSON line: the SDK's answers, so the test can compare them with ClickHouse.
import { OpenPanel } from '@openpanel/sdk';

const [apiUrl, clientId, clientSecret, runId] = process.argv.slice(2);
const op = new OpenPanel({ apiUrl, clientId, clientSecret });
// Server SDKs forward the visitor's IP and user agent as headers.
op.api.addHeader('openpanel-client-ip', '203.0.113.7');
op.api.addHeader(
  'user-agent',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
);

const answers = [];
answers.push(await op.identify({
  profileId: `node-user-${runId}`, firstName: 'Grace', lastName: 'Hopper',
  email: 'grace@example.com', properties: { plan: 'enterprise' },
}));
answers.push(await op.track('order_paid', { amount: 4200, currency: 'EUR', runId }));
answers.push(await op.increment({ profileId: `node-user-${runId}`, property: 'orders', value: 2 }));
answers.push(await op.decrement({ profileId: `node-user-${runId}`, property: 'credits' }));
answers.push(await op.revenue(1999, { runId }));
console.log(JSON.stringify({ answers, deviceId: op.getDeviceId() }));
