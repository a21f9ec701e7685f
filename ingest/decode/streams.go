package decode

import (
	"github.com/fenceline/fenceline/internal/model"
	"unicode/utf8"
)

// location reads a position given as lat, lon and datum values (any may be
// absent); with neither lat nor lon, or with both 0, it is the device's
// registered position.
// prefix ("loc." or "") names the fields in messages.
func (d *Decoder) location(latV, lonV, datumV uint32, dev *model.Device, prefix string) (model.Point, Reason, string) {
	d.registeredLoc = false
	gcj := false
	if d.present(datumV) {
		if d.t.kind(int(datumV)) != kString {
			return model.Point{}, BadDatum, prefix + "datum: want string, got " + d.typeName(datumV)
		}
		b := d.t.str(int(datumV))
		switch {
		case equalFoldASCII(b, "wgs84"):
		case equalFoldASCII(b, "gcj02"):
			gcj = true
		default:
			return model.Point{}, BadDatum, prefix + "datum: " + echoText(b) + " is neither wgs84 nor gcj02"
		}
	}
	hasLat, hasLon := d.present(latV), d.present(lonV)
	if !hasLat && !hasLon {
		if prefix != "" { // an explicit loc object must hold a position
			return model.Point{}, BadPosition, "loc: has neither lat nor lon"
		}
		if !dev.HasPos {
			return model.Point{}, NoPosition, "no lat/lon and device " + dev.ID + " has no registered position"
		}
		d.registeredLoc = true
		return dev.Pos, "", ""
	}
	if !hasLat {
		return model.Point{}, BadPosition, prefix + "lat: missing (lon is present)"
	}
	if !hasLon {
		return model.Point{}, BadPosition, prefix + "lon: missing (lat is present)"
	}
	lat, msg := d.floatIn(latV, -90, 90)
	if msg != "" {
		return model.Point{}, BadPosition, prefix + "lat: " + msg
	}
	lon, msg := d.floatIn(lonV, -180, 180)
	if msg != "" {
		return model.Point{}, BadPosition, prefix + "lon: " + msg
	}
	if lat == 0 && lon == 0 {
		// What a receiver without a fix reports, not a place on a border:
		// taken as no position, as if lat and lon were absent.
		if !dev.HasPos {
			where := "lat and lon"
			if prefix != "" {
				where = "loc: lat and lon"
			}
			return model.Point{}, NoPosition, where + " are both 0 (a receiver without a fix) and device " + dev.ID + " has no registered position"
		}
		d.registeredLoc = true
		return dev.Pos, "", ""
	}
	if gcj {
		lat, lon = GCJ02ToWGS84(lat, lon)
	}
	return model.Point{Lat: lat, Lon: lon}, "", ""
}

// messageLoc reads the loc object of a message.
func (d *Decoder) messageLoc(v uint32, dev *model.Device) (model.Point, Reason, string) {
	if !d.present(v) {
		return d.location(0, 0, 0, dev, "")
	}
	if d.t.kind(int(v)) != kObject {
		return model.Point{}, BadPosition, "loc: want object, got " + d.typeName(v)
	}
	var f fields
	f.collect(&d.t, int(v), locKeys)
	if i := f.firstDup(1<<lCount - 1); i >= 0 {
		return model.Point{}, BadField, "loc." + locNames[i] + ": duplicate key"
	}
	return d.location(f.vals[lLat], f.vals[lLon], f.vals[lDatum], dev, "loc.")
}

func equalFoldASCII(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// optText reads an optional text field into d.strs; "" and null are absent.
func (d *Decoder) optText(v uint32, max int) (span, string) {
	if !d.present(v) {
		return span{}, ""
	}
	b, msg := d.textBytes(v, max)
	if msg != "" {
		return span{}, msg
	}
	return d.put(b), ""
}

// optCode is optText for a code stored as an InfluxDB tag (plate_color,
// vehicle_type): full-width forms half-width, without leading or trailing
// white space, its ASCII letters in one case (upper, else lower), so that
// "Blue ", "ＢＬＵＥ" and "blue" are one series and one value for the
// rules. A code of spaces only is absent.
func (d *Decoder) optCode(v uint32, upper bool) (span, string) {
	sp, msg := d.optText(v, maxString)
	if msg != "" {
		return sp, msg
	}
	if text := d.strs[sp.off:sp.end]; !isASCII(text) {
		// Typed with a Chinese input method: full-width forms and the
		// ideographic space, as plates are (model.AppendPlate).
		off := len(d.strs)
		for _, r := range string(text) {
			if r, ok := model.CodeRune(r); ok {
				d.strs = utf8.AppendRune(d.strs, r)
			}
		}
		sp = d.spanFrom(off)
	}
	for sp.off < sp.end && d.strs[sp.off] == ' ' {
		sp.off++
	}
	for sp.end > sp.off && d.strs[sp.end-1] == ' ' {
		sp.end--
	}
	for i := sp.off; i < sp.end; i++ {
		switch c := d.strs[i]; {
		case upper && 'a' <= c && c <= 'z':
			d.strs[i] = c - ('a' - 'A')
		case !upper && 'A' <= c && c <= 'Z':
			d.strs[i] = c + ('a' - 'A')
		}
	}
	return sp, msg
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// optIdent returns the bytes of an optional identifier: not a string is an
// error; "" and null are absent (nil).
func (d *Decoder) optIdent(v uint32) ([]byte, string) {
	if !d.present(v) {
		return nil, ""
	}
	if d.t.kind(int(v)) != kString {
		return nil, "want string, got " + d.typeName(v)
	}
	if d.t.toks[v].lone {
		return nil, loneMsg
	}
	return d.t.str(int(v)), ""
}

// locatedReadings resolves the message's position (its loc, else the
// device's) and its readings array, shared by detections and passes; false
// when the message was rejected whole.
func (d *Decoder) locatedReadings(top *fields, arr uint32, dev *model.Device) (int, bool) {
	var r Reason
	var msg string
	if d.loc, r, msg = d.messagePosition(top, dev); r != "" {
		d.whole(r, msg)
		return 0, false
	}
	return d.readingsArray(arr)
}

// messagePosition is the position of a message: at the top level (as the
// contract's patrol fix has it) or in a loc object (as its detections have
// it), either form in any stream that has a position, else the device's
// registered position.
func (d *Decoder) messagePosition(top *fields, dev *model.Device) (model.Point, Reason, string) {
	lat, lon, datum := top.vals[tLat], top.vals[tLon], top.vals[tDatum]
	topLevel := d.present(lat) || d.present(lon) || d.present(datum)
	switch {
	case topLevel && d.present(top.vals[tLoc]):
		// Two positions: which one the unit meant is anyone's guess.
		return model.Point{}, BadPosition, "loc and a top-level lat, lon or datum: give the position once"
	case topLevel:
		// The unit's reported position, rather than the registered one,
		// checked as loc's would be (a bad one is bad_position, not
		// silently the registered position; a datum alone is checked as
		// it is for the registered position).
		return d.location(lat, lon, datum, dev, "")
	default:
		return d.messageLoc(top.vals[tLoc], dev)
	}
}

// detStrs are the string values of one accepted detection in d.strs.
type detStrs struct {
	imsi, imei, mac, tech span
	mncLen                uint32
	// techID, when not 0, is the tech as one of techNames, which the fast
	// path sets instead of the span (see knownTech).
	techID uint8
}

func (d *Decoder) detections(top *fields, arr uint32, dev *model.Device, out *model.Batch) {
	a, ok := d.locatedReadings(top, arr, dev)
	if !ok {
		return
	}
	if a == d.t.fastArr {
		d.fastDetections(out)
	} else {
		readAll(d, a, &out.Detections, &d.detStrs, d.detection)
	}

	s := d.strings()
	for j := range out.Detections {
		det, sp := &out.Detections[j], &d.detStrs[j]
		if sp.imsi.end > sp.imsi.off {
			det.IMSI = sub(s, sp.imsi)
			det.MCC = det.IMSI[:3]
			det.MNC = det.IMSI[3 : 3+sp.mncLen]
			det.Operator = det.IMSI[:3+sp.mncLen]
		}
		det.IMEI = sub(s, sp.imei)
		det.MAC = sub(s, sp.mac)
		if sp.techID != 0 {
			det.Tech = techNames[sp.techID]
		} else {
			det.Tech = sub(s, sp.tech)
		}
	}
}

// readAll reads the elements of readings array a with read, appending one
// reading to *dst and its strings' spans to *strs for each element it
// accepts. A rejected element's reading and strings are taken back and it is
// rejected; elements past model.MaxReadingsPerMessage are rejected unread.
func readAll[R, S any](d *Decoder, a int, dst *[]R, strs *[]S, read func(r *R, sp *S, v, i int) (Reason, string, string)) {
	*strs = (*strs)[:0]
	i := 0
	for it, end := a+1, d.t.end(a); it < end; it, i = d.t.next(it), i+1 {
		if i >= model.MaxReadingsPerMessage {
			d.tooMany(i)
			continue
		}
		// The reading and its spans are filled in place (pointers to
		// locals would escape through the indirect call).
		mark, n := len(d.strs), len(*dst)
		var zeroR R
		var zeroS S
		*dst, *strs = append(*dst, zeroR), append(*strs, zeroS)
		if r, field, msg := read(&(*dst)[n], &(*strs)[n], it, i); r != "" {
			*dst, *strs = (*dst)[:n], (*strs)[:n]
			d.strs = d.strs[:mark]
			d.reject(r, i, field, msg)
		}
	}
}

// detection reads detection i into det, or says why it is rejected.
func (d *Decoder) detection(det *model.Detection, sp *detStrs, v int, i int) (Reason, string, string) {
	if k := d.t.kind(v); k != kObject {
		return BadField, "", "want object, got " + k.String()
	}
	var f fields
	f.collect(&d.t, v, detKeys)
	if j := f.firstDup(1<<dCount - 1); j >= 0 {
		return BadField, detNames[j], "duplicate key"
	}

	b, msg := d.optIdent(f.vals[dIMSI])
	if msg != "" {
		return BadIMSI, "imsi", msg
	}
	if len(b) > 0 {
		mncLen, msg := imsiMNCLen(b)
		if msg != "" {
			return BadIMSI, "imsi", msg
		}
		sp.imsi, sp.mncLen = d.put(b), uint32(mncLen)
	}
	if b, msg = d.optIdent(f.vals[dIMEI]); msg != "" {
		return BadIMEI, "imei", msg
	}
	if len(b) > 0 {
		if msg := imeiMsg(b); msg != "" {
			return BadIMEI, "imei", msg
		}
		sp.imei = d.put(b)
	}
	if b, msg = d.optIdent(f.vals[dMAC]); msg != "" {
		return BadMAC, "mac", msg
	}
	if len(b) > 0 {
		off := len(d.strs)
		if d.strs, msg = appendMAC(d.strs, b); msg != "" {
			return BadMAC, "mac", msg
		}
		sp.mac = d.spanFrom(off)
	}
	if sp.imsi == (span{}) && sp.imei == (span{}) && sp.mac == (span{}) {
		return NoIdentifier, "", "none of imsi, imei, mac"
	}

	if v := f.vals[dRSSI]; d.present(v) {
		rssi, msg := d.floatIn(v, -150, 0)
		if msg != "" {
			return BadRSSI, "rssi", msg
		}
		det.RSSI = model.Some(rssi)
	}
	if v := f.vals[dTech]; d.present(v) {
		b, msg := d.textBytes(v, maxString)
		if msg != "" {
			if d.t.kind(int(v)) == kString && len(d.t.str(int(v))) > maxString {
				// Named by its own bound, not the one that stopped the scan.
				msg = tooLong(len(d.t.str(int(v))), maxTech)
			}
			return BadField, "tech", msg
		}
		off := len(d.strs)
		if d.strs, msg = appendTech(d.strs, b); msg != "" {
			return BadField, "tech", msg
		}
		sp.tech = d.spanFrom(off)
	}

	st, r, msg := d.stamp(f.vals[dTS], i)
	if r != "" {
		return r, "ts", msg
	}
	det.Stamp, det.Loc = st, d.loc
	return "", "", ""
}

// passStrs are the string values of one accepted pass in d.strs.
type passStrs struct {
	plate, plateColor, vehicleType, vehicleColor, image span
}

func (d *Decoder) passes(top *fields, arr uint32, dev *model.Device, out *model.Batch) {
	a, ok := d.locatedReadings(top, arr, dev)
	if !ok {
		return
	}
	readAll(d, a, &out.Passes, &d.passStrs, d.pass)

	s := d.strings()
	for j := range out.Passes {
		p, sp := &out.Passes[j], &d.passStrs[j]
		if sp.plate.end > sp.plate.off {
			p.Plate = sub(s, sp.plate)
		} else {
			p.Plate = model.NoPlate
		}
		p.PlateColor = sub(s, sp.plateColor)
		p.VehicleType = sub(s, sp.vehicleType)
		p.VehicleColor = sub(s, sp.vehicleColor)
		p.Image = sub(s, sp.image)
	}
}

// Directions, interned.
const (
	dirInbound  = "inbound"
	dirOutbound = "outbound"
	dirUnknown  = "unknown"
)

// pass reads pass i into p, or says why it is rejected.
func (d *Decoder) pass(p *model.Pass, sp *passStrs, v int, i int) (Reason, string, string) {
	if k := d.t.kind(v); k != kObject {
		return BadField, "", "want object, got " + k.String()
	}
	var f fields
	f.collect(&d.t, v, passKeys)
	if j := f.firstDup(1<<pCount - 1); j >= 0 {
		return BadField, passNames[j], "duplicate key"
	}

	pv := f.vals[pPlate]
	if !d.present(pv) {
		return NoPlate, "plate", "missing"
	}
	if d.t.kind(int(pv)) != kString {
		return NoPlate, "plate", "want string, got " + d.typeName(pv)
	}
	b, msg := d.textBytesSpaced(pv, maxString)
	if msg != "" {
		return BadField, "plate", msg
	}
	off := len(d.strs)
	var none bool
	if d.strs, none = appendPlate(d.strs, b); !none {
		sp.plate = d.spanFrom(off)
	}

	if v := f.vals[pDirection]; d.present(v) {
		if d.t.kind(int(v)) != kString {
			return BadDirection, "direction", "want string, got " + d.typeName(v)
		}
		b := d.t.str(int(v))
		if len(b) > 0 { // else absent
			dir, ok := directionOf(b)
			if !ok {
				// Spaces around it, or full-width letters (a camera set
				// to Chinese input): read as plates are.
				dir, ok = directionOf(model.AppendPlate(nil, b))
			}
			if !ok {
				return BadDirection, "direction", echoText(b) + " is not inbound, outbound or unknown"
			}
			p.Direction = dir
		}
	}

	if sp.plateColor, msg = d.optCode(f.vals[pPlateColor], false); msg != "" {
		return BadField, "plate_color", msg
	}
	if sp.vehicleType, msg = d.optCode(f.vals[pVehicleType], true); msg != "" {
		return BadField, "vehicle_type", msg
	}
	if sp.vehicleColor, msg = d.optText(f.vals[pVehicleColor], maxString); msg != "" {
		return BadField, "vehicle_color", msg
	}
	if sp.image, msg = d.optText(f.vals[pImage], maxImage); msg != "" {
		return BadField, "image", msg
	}

	if v := f.vals[pSpeed]; d.present(v) {
		x, msg := d.floatIn(v, 0, 500)
		if msg != "" {
			return BadField, "speed_kmh", msg
		}
		p.SpeedKmh = model.Some(x)
	}
	if v := f.vals[pLane]; d.present(v) {
		x, msg := d.integer(v, 0)
		if msg != "" {
			return BadField, "lane", msg
		}
		p.Lane = model.SomeInt(x)
	}
	if v := f.vals[pHeading]; d.present(v) {
		x, msg := d.floatIn(v, 0, 360)
		if msg != "" {
			return BadField, "heading", msg
		}
		p.Heading = model.Some(x)
	}
	if v := f.vals[pConfidence]; d.present(v) {
		x, msg := d.floatIn(v, 0, 1)
		if msg != "" {
			return BadField, "confidence", msg
		}
		p.Confidence = model.Some(x)
	}

	st, r, msg := d.stamp(f.vals[pTS], i)
	if r != "" {
		return r, "ts", msg
	}
	p.Stamp, p.Loc = st, d.loc
	return "", "", ""
}

// Bounds of a patrol's optional numbers.
const (
	maxSpeedKmh  = 500
	maxAccuracyM = 100_000
)

// position reads the single reading of a position message (index 0).
func (d *Decoder) position(f *fields, dev *model.Device, out *model.Batch) {
	loc, r, msg := d.messagePosition(f, dev)
	if r != "" {
		d.reject(r, 0, "", msg)
		return
	}
	p := model.Position{Loc: loc, Registered: d.registeredLoc}
	for _, o := range [...]struct {
		key    int
		lo, hi float64
		dst    *model.OptFloat
	}{
		{tSpeed, 0, maxSpeedKmh, &p.SpeedKmh},
		{tHeading, 0, 360, &p.Heading},
		{tAccuracy, 0, maxAccuracyM, &p.AccuracyM},
	} {
		if v := f.vals[o.key]; d.present(v) {
			x, msg := d.floatIn(v, o.lo, o.hi)
			if msg != "" {
				d.reject(BadField, 0, topNames[o.key], msg)
				return
			}
			*o.dst = model.Some(x)
		}
	}
	p.Stamp = model.Stamp{Time: d.msgTime, PointNS: model.PointTime(d.msgTime, d.seq, 0)}
	out.Positions = append(out.Positions, p)
}

// status reads the single reading of a status message (index 0).
func (d *Decoder) status(f *fields, out *model.Batch) {
	var s model.Status
	var powerSp, fwSp span
	for _, o := range [...]struct {
		key    int
		lo, hi float64
		dst    *model.OptFloat
	}{
		{tBattery, 0, 100, &s.BatteryPct},
		{tTemp, -100, 150, &s.TempC},
		{tSignal, -200, 0, &s.SignalDbm},
	} {
		if v := f.vals[o.key]; d.present(v) {
			x, msg := d.floatIn(v, o.lo, o.hi)
			if msg != "" {
				d.reject(BadField, 0, topNames[o.key], msg)
				return
			}
			*o.dst = model.Some(x)
		}
	}
	for _, o := range [...]struct {
		key int
		dst *model.OptInt
	}{
		{tUptime, &s.UptimeS},
		{tQueue, &s.Queue},
	} {
		if v := f.vals[o.key]; d.present(v) {
			x, msg := d.integer(v, 0)
			if msg != "" {
				d.reject(BadField, 0, topNames[o.key], msg)
				return
			}
			*o.dst = model.SomeInt(x)
		}
	}
	if v := f.vals[tTamper]; d.present(v) {
		switch d.t.kind(int(v)) {
		case kTrue:
			s.Tamper = model.SomeBool(true)
		case kFalse:
			s.Tamper = model.SomeBool(false)
		default:
			d.reject(BadField, 0, "tamper", "want bool, got "+d.typeName(v))
			return
		}
	}
	var msg string
	if powerSp, msg = d.optText(f.vals[tPower], maxString); msg != "" {
		d.reject(BadField, 0, "power", msg)
		return
	}
	if fwSp, msg = d.optText(f.vals[tFW], maxString); msg != "" {
		d.reject(BadField, 0, "fw", msg)
		return
	}
	str := d.strings()
	s.Power, s.FW = sub(str, powerSp), sub(str, fwSp)
	s.Stamp = model.Stamp{Time: d.msgTime, PointNS: model.PointTime(d.msgTime, d.seq, 0)}
	out.Statuses = append(out.Statuses, s)
}

// directionOf is the direction b names, in any ASCII case.
func directionOf(b []byte) (string, bool) {
	for _, dir := range [...]string{dirInbound, dirOutbound, dirUnknown} {
		if equalFoldASCII(b, dir) {
			return dir, true
		}
	}
	return "", false
}
