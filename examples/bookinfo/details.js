'use strict'
// details: GET /details/ID answers the book's details.
const { serve, POD } = require('./http-json')

serve(async (url) => {
  if (url.pathname === '/health') return { status: 200, body: { ok: true } }
  const id = /^\/details\/(\d+)$/.exec(url.pathname)?.[1]
  if (id === undefined) return { status: 404, body: { error: 'try /details/0' } }
  return { status: 200, body: { id: Number(id), author: 'William Shakespeare', year: 1595, type: 'paperback', pages: 200, publisher: 'PublisherA', language: 'English', pod: POD } }
})
