'use strict'
// ratings: GET /ratings/ID answers each reviewer's stars.
const { serve, POD } = require('./http-json')

serve(async (url) => {
  if (url.pathname === '/health') return { status: 200, body: { ok: true } }
  const id = /^\/ratings\/(\d+)$/.exec(url.pathname)?.[1]
  if (id === undefined) return { status: 404, body: { error: 'try /ratings/0' } }
  return { status: 200, body: { id: Number(id), ratings: { Reviewer1: 5, Reviewer2: 4 }, pod: POD } }
})
