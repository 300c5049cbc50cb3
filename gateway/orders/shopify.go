package orders

import (
	"time"
)

// Shopify topics read (X-Shopify-Topic).
const (
	ShopifyOrdersCreate    = "orders/create"
	ShopifyOrdersUpdated   = "orders/updated"
	ShopifyOrdersPaid      = "orders/paid"
	ShopifyOrdersCancelled = "orders/cancelled"
	ShopifyRefundsCreate   = "refunds/create"
)

// shopifyOrder is the part of Shopify's order payload (REST Admin API
// shape, as its order webhooks deliver it) that tagway reads.
type shopifyOrder struct {
	ID              jsonID     `json:"id"`
	CreatedAt       *string    `json:"created_at"`
	UpdatedAt       *string    `json:"updated_at"`
	CancelledAt     *string    `json:"cancelled_at"`
	Currency        string     `json:"currency"`
	TotalPrice      jsonAmount `json:"total_price"`
	FinancialStatus *string    `json:"financial_status"`
	Test            bool       `json:"test"`
	SourceName      *string    `json:"source_name"`

	Email         *string `json:"email"`
	ContactEmail  *string `json:"contact_email"`
	Phone         *string `json:"phone"`
	BrowserIP     *string `json:"browser_ip"`
	ClientDetails *struct {
		UserAgent *string `json:"user_agent"`
	} `json:"client_details"`
	Customer *struct {
		Email          *string  `json:"email"`
		Phone          *string  `json:"phone"`
		FirstName      *string  `json:"first_name"`
		LastName       *string  `json:"last_name"`
		DefaultAddress *address `json:"default_address"`
	} `json:"customer"`
	BillingAddress  *address `json:"billing_address"`
	ShippingAddress *address `json:"shipping_address"`

	LandingSite    *string     `json:"landing_site"`
	NoteAttributes []attrEntry `json:"note_attributes"`

	LineItems []rawLineItem   `json:"line_items"`
	Refunds   []shopifyRefund `json:"refunds"`
}

// shopifyRefund is Shopify's refund payload (refunds/create, and each item
// of an order's refunds).
type shopifyRefund struct {
	ID           jsonID  `json:"id"`
	OrderID      jsonID  `json:"order_id"`
	CreatedAt    *string `json:"created_at"`
	Transactions []struct {
		Kind     string     `json:"kind"`
		Status   string     `json:"status"`
		Amount   jsonAmount `json:"amount"`
		Currency string     `json:"currency"`
	} `json:"transactions"`
}

// ParseShopify reads one Shopify webhook body of the given topic
// (X-Shopify-Topic): an order for the orders/* topics, a refund for
// refunds/create. now is the receive time; it bounds the order's times and
// the date-of-birth rules of hashing. Errors are *PayloadError (joined when
// several), or ErrUnknownTopic.
func ParseShopify(topic string, body []byte, now time.Time) (Change, error) {
	c := Change{Source: Shopify, Topic: topic, Kind: KindOrder, ReceivedAt: now}
	switch topic {
	case ShopifyOrdersCreate, ShopifyOrdersUpdated, ShopifyOrdersPaid, ShopifyOrdersCancelled:
		var raw shopifyOrder
		if err := decode(body, &raw); err != nil {
			return Change{}, err
		}
		o, err := raw.order(topic, now)
		if err != nil {
			return Change{}, err
		}
		c.OrderID, c.Order = o.ID, o
		return c, nil
	case ShopifyRefundsCreate:
		var raw shopifyRefund
		if err := decode(body, &raw); err != nil {
			return Change{}, err
		}
		var p problems
		r := raw.refund("", &p)
		if r.OrderID == "" && len(p) == 0 {
			p.add("order_id", "is required")
		}
		if err := p.err(); err != nil {
			return Change{}, err
		}
		c.Kind, c.OrderID, c.Refund = KindRefund, r.OrderID, &r
		return c, nil
	}
	return Change{}, ErrUnknownTopic
}

// order validates the payload and builds the Order.
func (s *shopifyOrder) order(topic string, now time.Time) (*Order, error) {
	var p problems
	o := &Order{
		ID:        p.requireID("id", s.ID),
		CreatedAt: p.orderTime("created_at", s.CreatedAt, now, parseRFC3339),
		UpdatedAt: p.optionalTime("updated_at", s.UpdatedAt, parseRFC3339),
		Currency:  p.currency("currency", s.Currency, true),
		Total:     p.amount("total_price", s.TotalPrice),
		Test:      s.Test,
	}
	if s.FinancialStatus != nil {
		o.Status = *s.FinancialStatus
	}
	switch o.Status {
	case "paid", "partially_refunded", "refunded":
		o.Paid = true
	}
	o.Paid = o.Paid || topic == ShopifyOrdersPaid
	o.Cancelled = s.CancelledAt != nil && *s.CancelledAt != ""
	if s.SourceName != nil && len(*s.SourceName) <= MaxIDLen {
		o.Channel = *s.SourceName
	}

	p.lineItems(o, s.LineItems)
	if len(s.Refunds) > MaxRefunds {
		p.add("refunds", "more than %d refunds", MaxRefunds)
	} else {
		for i := range s.Refunds {
			r := s.Refunds[i].refund(index("refunds", i), &p)
			r.OrderID = o.ID
			o.Refunds = append(o.Refunds, r)
		}
	}
	if err := p.err(); err != nil {
		return nil, err
	}

	var a attrs
	for i, na := range s.NoteAttributes {
		if i == maxAttrs {
			break
		}
		a.read("note_attributes.", na, &o.Skipped)
	}
	landingSite := ""
	if s.LandingSite != nil {
		landingSite = *s.LandingSite
	}
	o.Link = a.link(landingSite, now, &o.Skipped)

	var cu customer
	cu.add(fEmail, s.Email)
	cu.add(fEmail, s.ContactEmail)
	cu.add(fPhone, s.Phone)
	cu.addAddress(s.BillingAddress)
	if c := s.Customer; c != nil {
		cu.add(fEmail, c.Email)
		cu.add(fPhone, c.Phone)
		cu.add(fFirstName, c.FirstName)
		cu.add(fLastName, c.LastName)
		if s.BillingAddress == nil {
			cu.addAddress(c.DefaultAddress)
		}
	}
	if s.BillingAddress == nil {
		cu.addAddress(s.ShippingAddress)
	}
	o.UserData = cu.userData(now, &o.Skipped)
	if s.BrowserIP != nil {
		o.UserData.ClientIPAddress = clientIP(*s.BrowserIP)
	}
	if cd := s.ClientDetails; cd != nil && cd.UserAgent != nil {
		o.UserData.ClientUserAgent = userAgent(*cd.UserAgent)
	}
	return o, nil
}

// refund validates one refund: its amount is the sum of its successful
// refund transactions (what went back to the customer).
func (s *shopifyRefund) refund(field string, p *problems) Refund {
	at := func(name string) string {
		if field == "" {
			return name
		}
		return field + "." + name
	}
	r := Refund{
		ID:        p.requireID(at("id"), s.ID),
		CreatedAt: p.optionalTime(at("created_at"), s.CreatedAt, parseRFC3339),
	}
	if s.OrderID.bad {
		p.add(at("order_id"), "must be a positive integer or a string of digits")
	}
	r.OrderID = s.OrderID.v
	if len(s.Transactions) > MaxRefundTransactions {
		p.add(at("transactions"), "more than %d transactions", MaxRefundTransactions)
		return r
	}
	for i, t := range s.Transactions {
		tf := index(at("transactions"), i)
		if t.Amount.bad || t.Amount.v < 0 {
			p.add(tf+".amount", "must be a non-negative decimal amount")
			continue
		}
		if t.Kind != "refund" || (t.Status != "success" && t.Status != "") {
			continue
		}
		cur := p.currency(tf+".currency", t.Currency, false)
		if r.Currency != "" && cur != "" && cur != r.Currency {
			p.add(tf+".currency", "differs from the refund's other transactions")
			continue
		}
		if cur != "" {
			r.Currency = cur
		}
		r.Amount += t.Amount.v
	}
	return r
}
