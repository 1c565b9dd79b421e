'use strict'
// The shop's front door. GET /checkout?user=U&amount=N asks cart to check out and
// returns the whole chain's answer. Its only configuration: PORT and CART_URL.
const { requestJSON, serveJSON } = require('./http-json')

const port = Number(process.env.PORT || 8080)
const cartURL = process.env.CART_URL || 'http://cart:8080'
const me = process.env.HOSTNAME || 'web'

serveJSON(port, {
  'GET /': async () => ({ shop: 'ferry example shop', try: '/checkout?user=alice&amount=42', served_by: me }),
  'GET /healthz': async () => ({ ok: true }),
  'GET /checkout': async (q) => {
    const user = q.user || 'anonymous'
    const amount = Number(q.amount || 1)
    const qs = new URLSearchParams({ user, amount: String(amount) })
    const cart = await requestJSON('GET', `${cartURL}/checkout?${qs}`)
    return { web: me, ...cart }
  }
})
