'use strict'
// reviews: GET /reviews/ID answers two reviews. $VERSION says what the version adds:
// v1 no stars; v2 the ratings (from RATINGS_URL, default http://ratings:9080) as black
// stars; v3 as red stars. When ratings fails, v2 and v3 answer 503 (so a retry from the
// caller can help; bookinfo's own reviews would answer 200 with "ratings unavailable").
const { getJSON, serve, POD } = require('./http-json')

const VERSION = process.env.VERSION ?? 'v1'
const RATINGS = process.env.RATINGS_URL ?? 'http://ratings:9080'
const STARS = { v2: 'black', v3: 'red' }

serve(async (url) => {
  if (url.pathname === '/health') return { status: 200, body: { ok: true } }
  const id = /^\/reviews\/(\d+)$/.exec(url.pathname)?.[1]
  if (id === undefined) return { status: 404, body: { error: 'try /reviews/0' } }
  const reviews = [{ reviewer: 'Reviewer1', text: 'An extremely entertaining play by Shakespeare.' }, { reviewer: 'Reviewer2', text: 'Absolutely fun and entertaining.' }]
  const body = { id: Number(id), version: VERSION, pod: POD, reviews }
  if (!(VERSION in STARS)) return { status: 200, body }
  const ratings = await getJSON(`${RATINGS}/ratings/${id}`)
  if (ratings.status !== 200) return { status: 503, body: { ...body, error: `ratings answered ${ratings.status || ratings.error}` } }
  for (const r of reviews) r.stars = { count: ratings.body.ratings[r.reviewer], color: STARS[VERSION] }
  return { status: 200, body }
})
