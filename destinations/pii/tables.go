package pii

import "strings"

// usStates maps US state, district and territory names, compacted as
// lettersOnly leaves them ("newyork"), to their two-letter USPS/ANSI codes.
var usStates = map[string]string{
	"alabama": "al", "alaska": "ak", "arizona": "az", "arkansas": "ar",
	"california": "ca", "colorado": "co", "connecticut": "ct", "delaware": "de",
	"florida": "fl", "georgia": "ga", "hawaii": "hi", "idaho": "id",
	"illinois": "il", "indiana": "in", "iowa": "ia", "kansas": "ks",
	"kentucky": "ky", "louisiana": "la", "maine": "me", "maryland": "md",
	"massachusetts": "ma", "michigan": "mi", "minnesota": "mn", "mississippi": "ms",
	"missouri": "mo", "montana": "mt", "nebraska": "ne", "nevada": "nv",
	"newhampshire": "nh", "newjersey": "nj", "newmexico": "nm", "newyork": "ny",
	"northcarolina": "nc", "northdakota": "nd", "ohio": "oh", "oklahoma": "ok",
	"oregon": "or", "pennsylvania": "pa", "rhodeisland": "ri", "southcarolina": "sc",
	"southdakota": "sd", "tennessee": "tn", "texas": "tx", "utah": "ut",
	"vermont": "vt", "virginia": "va", "washington": "wa", "westvirginia": "wv",
	"wisconsin": "wi", "wyoming": "wy",
	"districtofcolumbia": "dc", "washingtondc": "dc",
	"puertorico": "pr", "guam": "gu", "americansamoa": "as",
	"usvirginislands": "vi", "virginislands": "vi", "northernmarianaislands": "mp",
}

// countryNames maps the most common ways of writing a country name in
// English or in its own language (with only their letters and digits kept, lowercased) to its ISO
// 3166-1 alpha-2 code. It is deliberately short: two-letter codes are the
// documented input, names are a convenience.
var countryNames = map[string]string{
	"unitedstates": "us", "unitedstatesofamerica": "us", "usa": "us", "us": "us", "america": "us",
	"unitedkingdom": "gb", "uk": "gb", "greatbritain": "gb", "britain": "gb", "england": "gb",
	"scotland": "gb", "wales": "gb", "northernireland": "gb",
	"canada": "ca", "australia": "au", "newzealand": "nz", "ireland": "ie",
	"germany": "de", "deutschland": "de", "france": "fr", "spain": "es", "espana": "es", "españa": "es",
	"italy": "it", "italia": "it", "netherlands": "nl", "thenetherlands": "nl", "holland": "nl", "nederland": "nl",
	"belgium": "be", "belgique": "be", "belgie": "be", "switzerland": "ch", "schweiz": "ch", "suisse": "ch",
	"austria": "at", "österreich": "at", "osterreich": "at", "portugal": "pt", "sweden": "se", "sverige": "se",
	"norway": "no", "norge": "no", "denmark": "dk", "danmark": "dk", "finland": "fi", "suomi": "fi",
	"poland": "pl", "polska": "pl", "czechia": "cz", "czechrepublic": "cz", "greece": "gr",
	"romania": "ro", "hungary": "hu", "turkey": "tr", "türkiye": "tr", "turkiye": "tr",
	"russia": "ru", "russianfederation": "ru", "ukraine": "ua",
	"mexico": "mx", "méxico": "mx", "brazil": "br", "brasil": "br", "argentina": "ar",
	"chile": "cl", "colombia": "co", "peru": "pe",
	"india": "in", "china": "cn", "japan": "jp", "southkorea": "kr",
	"republicofkorea": "kr", "taiwan": "tw", "hongkong": "hk", "singapore": "sg",
	"malaysia": "my", "indonesia": "id", "philippines": "ph", "thailand": "th", "vietnam": "vn",
	"pakistan": "pk", "bangladesh": "bd", "israel": "il", "saudiarabia": "sa",
	"unitedarabemirates": "ae", "uae": "ae", "egypt": "eg", "southafrica": "za",
	"nigeria": "ng", "kenya": "ke", "morocco": "ma",
	"georgia": "ge", "ivorycoast": "ci", "cotedivoire": "ci", "côtedivoire": "ci",
	// Common ISO 3166-1 alpha-3 codes.
	"aus": "au", "aut": "at", "bel": "be", "bra": "br", "can": "ca", "che": "ch", "chn": "cn",
	"deu": "de", "dnk": "dk", "esp": "es", "fin": "fi", "fra": "fr", "gbr": "gb", "ind": "in",
	"irl": "ie", "ita": "it", "jpn": "jp", "mex": "mx", "nld": "nl", "nor": "no", "nzl": "nz",
	"pol": "pl", "prt": "pt", "swe": "se", "zaf": "za",
}

// isoAlpha2Codes lists the officially assigned ISO 3166-1 alpha-2 codes,
// plus "xk" (Kosovo, user-assigned but in common use).
const isoAlpha2Codes = "" +
	"ad ae af ag ai al am ao aq ar as at au aw ax az " +
	"ba bb bd be bf bg bh bi bj bl bm bn bo bq br bs bt bv bw by bz " +
	"ca cc cd cf cg ch ci ck cl cm cn co cr cu cv cw cx cy cz " +
	"de dj dk dm do dz ec ee eg eh er es et " +
	"fi fj fk fm fo fr " +
	"ga gb gd ge gf gg gh gi gl gm gn gp gq gr gs gt gu gw gy " +
	"hk hm hn hr ht hu id ie il im in io iq ir is it " +
	"je jm jo jp ke kg kh ki km kn kp kr kw ky kz " +
	"la lb lc li lk lr ls lt lu lv ly " +
	"ma mc md me mf mg mh mk ml mm mn mo mp mq mr ms mt mu mv mw mx my mz " +
	"na nc ne nf ng ni nl no np nr nu nz om " +
	"pa pe pf pg ph pk pl pm pn pr ps pt pw py qa " +
	"re ro rs ru rw " +
	"sa sb sc sd se sg sh si sj sk sl sm sn so sr ss st sv sx sy sz " +
	"tc td tf tg th tj tk tl tm tn to tr tt tv tw tz " +
	"ua ug um us uy uz va vc ve vg vi vn vu wf ws xk ye yt za zm zw"

// isoAlpha2 reports whether code (two lowercase ASCII letters) is assigned.
func isoAlpha2(code string) bool {
	if len(code) != 2 || code[0] < 'a' || code[0] > 'z' || code[1] < 'a' || code[1] > 'z' {
		return false
	}
	i := strings.Index(isoAlpha2Codes, code)
	return i >= 0 && i%3 == 0
}
