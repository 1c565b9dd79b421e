'use strict'
// Payments: POST /pay {user, amount} records the payment in Redis (db) and answers
// with the running totals; GET /stats reads them. Configuration: PORT, REDIS_HOST, REDIS_PORT.
const { serveJSON } = require('./http-json')
const { Redis } = require('./resp')

const port = Number(process.env.PORT || 8080)
const me = process.env.HOSTNAME || 'payments'
const db = new Redis(process.env.REDIS_HOST || 'db', Number(process.env.REDIS_PORT || 6379))

serveJSON(port, {
  'GET /': async () => ({ service: 'payments', try: 'POST /pay {"user":"alice","amount":42}', served_by: me }),
  'GET /healthz': async () => ({ ok: true }),
  'POST /pay': async (_q, body) => {
    if (body === undefined || typeof body.user !== 'string' || !Number.isInteger(body.amount) || body.amount <= 0) {
      throw new Error('want {"user": string, "amount": positive integer}')
    }
    const revenue = await db.command('INCRBY', 'shop:revenue', body.amount)
    const payments = await db.command('RPUSH', `shop:payments:${body.user}`, body.amount)
    return { payments: me, user: body.user, amount: body.amount, user_payments: payments, revenue }
  },
  'GET /stats': async () => ({ payments: me, revenue: Number(await db.command('GET', 'shop:revenue') || 0) })
})
