'use strict'
// productpage: GET /productpage calls details and reviews and answers what each said.
// A reviews failure does not fail the page (as bookinfo's page shows "reviews
// unavailable"): the page answers 200 with `reviews: { error: STATUS }`.
//   DETAILS_URL (default http://details:9080), REVIEWS_URL (default http://reviews:9080)
const { getJSON, serve, POD } = require('./http-json')

const DETAILS = process.env.DETAILS_URL ?? 'http://details:9080'
const REVIEWS = process.env.REVIEWS_URL ?? 'http://reviews:9080'

serve(async (url) => {
  if (url.pathname === '/health') return { status: 200, body: { ok: true } }
  if (url.pathname !== '/productpage') return { status: 404, body: { error: 'try /productpage' } }
  const [details, reviews] = await Promise.all([getJSON(`${DETAILS}/details/0`), getJSON(`${REVIEWS}/reviews/0`)])
  return {
    status: 200,
    body: {
      productpage: POD,
      details: details.status === 200 ? details.body : { error: details.status || details.error },
      reviews: reviews.status === 200 ? reviews.body : { error: reviews.status || reviews.error }
    }
  }
})
