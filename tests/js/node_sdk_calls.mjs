// The real @openpanel/sdk (node) with a client secret against our server; prints each call's reply.
//
//   node node_sdk_calls.mjs <apiUrl> <clientId> <clientSecret>
import { OpenPanel } from '@openpanel/sdk';

const [apiUrl, clientId, clientSecret] = process.argv.slice(2);
const op = new OpenPanel({ apiUrl, clientId, clientSecret });
const replies = {};

replies.identify = await op.identify({
  profileId: 'srv_1',
  firstName: 'Ada',
  email: 'ada@example.com',
  properties: { plan: 'pro', logins: 1 },
});
replies.increment = await op.increment({ profileId: 'srv_1', property: 'logins', value: 5 });
replies.decrement = await op.decrement({ profileId: 'srv_1', property: 'logins', value: 2 });
replies.upsertGroup = await op.upsertGroup({
  id: 'org_1',
  type: 'company',
  name: 'Acme Inc',
  properties: { seats: 12 },
});
replies.setGroup = await op.setGroup('org_1');
replies.track = await op.track('order_placed', { total: 42, currency: 'EUR' });
replies.deviceId = op.getDeviceId();

process.stdout.write(JSON.stringify(replies));
