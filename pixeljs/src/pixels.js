// Browser pixels that receive each event with the same event_id as the
// gateway, so that the platform counts the conversion once. Each forwarder
// takes the window and the event; more platforms are added to the list.

const META_STANDARD = (
  'AddPaymentInfo AddToCart AddToWishlist CompleteRegistration Contact ' +
  'CustomizeProduct Donate FindLocation InitiateCheckout Lead PageView Purchase ' +
  'Schedule Search StartTrial SubmitApplication Subscribe ViewContent'
).split(' ');

// meta hands the event to the Meta Pixel when the page has one: standard names
// through fbq('track'), others through fbq('trackCustom'), with eventID set to
// the event_id tagway posts.
function meta(w, e) {
  if (typeof w.fbq != 'function') return;
  w.fbq(
    META_STANDARD.indexOf(e.event_name) < 0 ? 'trackCustom' : 'track',
    e.event_name,
    e.custom_data || {},
    { eventID: e.event_id },
  );
}

// forward hands the event to every pixel on the page. One failing pixel never
// stops the others nor the tracker.
export function forward(w, e) {
  for (const p of [meta]) {
    try {
      p(w, e);
    } catch (err) {}
  }
}
