// Sends events with the unmodified @segment/analytics-node, configured only by its host (and, for a region prefix,
// its path: the library resolves its path against the host, so an absolute path drops the host's own path).
// Input (env DROPIN_PLAN, JSON): {host, path, keys: [..], perKey, invalid: bool}. Output: one JSON line on stdout,
// {sent: [messageId...], errors: [{messageId, reason}]}.
import { Analytics } from '@segment/analytics-node'

const plan = JSON.parse(process.env.DROPIN_PLAN)
const sent = []
const errors = []

async function sendAll(writeKey) {
  const settings = { writeKey, host: plan.host }
  if (plan.path) settings.path = plan.path
  const analytics = new Analytics(settings)
  analytics.on('error', (err) => {
    errors.push({ messageId: err.ctx?.event?.messageId ?? null, reason: String(err.reason) })
  })
  for (let i = 0; i < plan.perKey; i++) {
    const messageId = `node-${writeKey}-${i}`
    const userId = `user-${i % 97}`
    if (i % 3 === 0) analytics.track({ userId, event: 'Email Opened', properties: { i }, messageId })
    else if (i % 3 === 1) analytics.identify({ userId, traits: { email: `${userId}@example.com` }, messageId })
    else analytics.group({ userId, groupId: `group-${i % 7}`, traits: { name: 'Acme' }, messageId })
    sent.push(messageId)
  }
  await analytics.closeAndFlush({ timeout: 60000 })
}

async function sendInvalid(writeKey) {
  const analytics = new Analytics({ writeKey, host: plan.host, ...(plan.path ? { path: plan.path } : {}) })
  analytics.on('error', (err) => {
    errors.push({ messageId: err.ctx?.event?.messageId ?? null, reason: String(err.reason) })
  })
  analytics.track({ anonymousId: 'anon-1', event: 'Email Opened', messageId: `node-${writeKey}-no-user` })
  await analytics.closeAndFlush({ timeout: 60000 })
}

await Promise.all(plan.keys.map(sendAll))
if (plan.invalid) await sendInvalid(plan.keys[0])
process.stdout.write(JSON.stringify({ sent, errors }) + '\n')
