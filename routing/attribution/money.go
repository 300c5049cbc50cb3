package attribution

import "strconv"

// Money is a sum in millionths of its currency's unit (12.50 is
// 12_500_000), exact under addition. It marshals as a JSON number in
// currency units (12.5).
type Money int64

// Float returns the sum in currency units. Below 10^9 units the nearest
// float64 prints back as the exact decimal.
func (m Money) Float() float64 { return float64(m) / 1e6 }

// String writes the sum as a plain decimal ("12.5").
func (m Money) String() string { return strconv.FormatFloat(m.Float(), 'f', -1, 64) }

// MarshalJSON writes the sum as a JSON number.
func (m Money) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, m.Float(), 'f', -1, 64), nil
}
