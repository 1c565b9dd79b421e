'use strict'
// The cart: GET /checkout?user=U&amount=N charges the user through payments.
// Configuration: PORT and PAYMENTS_URL.
const { requestJSON, serveJSON } = require('./http-json')

const port = Number(process.env.PORT || 8080)
const paymentsURL = process.env.PAYMENTS_URL || 'http://payments:8080'
const me = process.env.HOSTNAME || 'cart'

serveJSON(port, {
  'GET /': async () => ({ service: 'cart', try: '/checkout?user=alice&amount=42', served_by: me }),
  'GET /healthz': async () => ({ ok: true }),
  'GET /checkout': async (q) => {
    const amount = Number(q.amount)
    if (!Number.isInteger(amount) || amount <= 0) throw new Error(`amount must be a positive integer, got ${q.amount}`)
    const paid = await requestJSON('POST', `${paymentsURL}/pay`, { user: q.user || 'anonymous', amount })
    return { cart: me, ...paid }
  }
})
