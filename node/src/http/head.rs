//! Request and response heads: parsed with `httparse`, checked as strictly
//! as HAProxy 2.6 checks them, and kept as byte ranges into the buffer they
//! came from, so that forwarding copies the client's own header lines
//! (order and case kept) and edits only what must change.
//!
//! HAProxy 2.6's answers, checked against the real binary (see
//! node/tests/haproxy_compare.rs), that this module reproduces:
//!
//! | request                                           | answer |
//! |---------------------------------------------------|--------|
//! | two `Host` lines with different values            | 400    |
//! | absolute URI whose authority differs from `Host`  | 400    |
//! | `Content-Length` values that differ, or not digits | 400   |
//! | `Transfer-Encoding` naming `chunked` twice         | 400    |
//! | `Transfer-Encoding` not ending in `chunked`        | 400    |
//! | another coding before `chunked` (`identity, chunked`) | 422 |
//! | both `Content-Length` and `Transfer-Encoding`      | CL dropped, connection closed after |
//! | more than `tune.http.maxhdr` lines (start line included) | 400 |
//! | a head larger than the buffer allows               | 400    |
//!
//! Responses with the same faults are refused with 502, except that a
//! response may use other codings before `chunked`, and one whose
//! `Transfer-Encoding` does not end in `chunked` runs until close.

use std::mem::MaybeUninit;

/// A byte range in the buffer a head was parsed from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    /// The bytes of this range in `buf`.
    pub fn of<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.start as usize..self.end as usize]
    }
    fn within(buf: &[u8], part: &[u8]) -> Span {
        // Both slices come from the same buffer: subtracting addresses
        // gives the offset without any unsafe code.
        let start = part.as_ptr() as usize - buf.as_ptr() as usize;
        Span {
            start: start as u32,
            end: (start + part.len()) as u32,
        }
    }
}

/// Header lines the proxy itself interprets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Other,
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    KeepAlive,
    ProxyConnection,
    Te,
    Upgrade,
    Cookie,
    SetCookie,
    CacheControl,
}

impl Kind {
    fn of(name: &[u8]) -> Kind {
        let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
        match name.len() {
            2 if is("te") => Kind::Te,
            4 if is("host") => Kind::Host,
            6 if is("cookie") => Kind::Cookie,
            7 if is("upgrade") => Kind::Upgrade,
            10 if is("connection") => Kind::Connection,
            10 if is("keep-alive") => Kind::KeepAlive,
            10 if is("set-cookie") => Kind::SetCookie,
            13 if is("cache-control") => Kind::CacheControl,
            14 if is("content-length") => Kind::ContentLength,
            16 if is("proxy-connection") => Kind::ProxyConnection,
            17 if is("transfer-encoding") => Kind::TransferEncoding,
            _ => Kind::Other,
        }
    }
}

/// One header line.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: Span,
    pub value: Span,
    pub kind: Kind,
    /// Not forwarded: hop-by-hop, named in `Connection`, or a duplicate.
    pub hop: bool,
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked transfer coding (forwarded as received).
    Chunked,
    /// Until the server closes (responses only).
    UntilClose,
}

/// Tokens of the `Connection` header(s).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnOpts {
    pub close: bool,
    pub keep_alive: bool,
    pub upgrade: bool,
    /// Other tokens: header names to drop before forwarding.
    pub names: bool,
}

/// A parsed request head, as ranges into the client's buffer.
#[derive(Debug)]
pub struct RequestHead {
    /// Bytes of the head, final empty line included.
    pub len: usize,
    pub method: Span,
    pub target: Span,
    /// HTTP/1.`minor`.
    pub minor: u8,
    pub fields: Vec<Field>,
    pub framing: Framing,
    pub conn: ConnOpts,
    /// `Connection: upgrade` with an `Upgrade` header: may become a tunnel.
    pub upgrade: bool,
    /// `TE` listed `trailers`, which is passed on (as HAProxy does).
    pub te_trailers: bool,
    /// `Content-Length` needs rewriting to this single value (it was a list).
    pub normalized_length: Option<u64>,
    /// Both `Content-Length` and `Transfer-Encoding` came: the length was
    /// dropped and the connection closes after the response.
    pub smuggle_guard: bool,
    pub method_kind: Method,
    /// An idempotent method (RFC 9110 9.2.2): GET, HEAD, OPTIONS, TRACE,
    /// PUT or DELETE. Only these may be sent again automatically.
    pub idempotent: bool,
}

/// The methods whose semantics the proxy cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Head,
    Connect,
    Other,
}

/// A parsed response head, as ranges into the server-side buffer.
#[derive(Debug)]
pub struct ResponseHead {
    pub len: usize,
    pub minor: u8,
    pub status: u16,
    /// The status code and reason as received (`200 OK`).
    pub status_text: Span,
    pub fields: Vec<Field>,
    pub framing: Framing,
    pub conn: ConnOpts,
    pub normalized_length: Option<u64>,
    /// The server may keep the connection open after this response.
    pub keep_alive: bool,
    /// The message carried both lengths; the connection is not reused.
    pub smuggle_guard: bool,
}

/// Size limits taken from `global`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `tune.bufsize`.
    pub bufsize: usize,
    /// `tune.http.maxhdr`: lines in a head, start line included.
    pub maxhdr: usize,
}

impl Limits {
    /// `tune.maxrewrite` as HAProxy applies it: 1024, at most half the buffer.
    fn maxrewrite(&self) -> usize {
        1024.min(self.bufsize / 2)
    }

    /// The most bytes a head may occupy while it is incomplete.
    pub fn room(&self) -> usize {
        self.bufsize - self.maxrewrite()
    }

    /// HAProxy stores a head in its internal HTX form, which needs 79 bytes
    /// per message and 4 bytes per header line more than the wire form;
    /// counting the same way refuses exactly the heads HAProxy refuses.
    fn fits(&self, len: usize, fields: usize) -> bool {
        len + 4 * fields + HTX_OVERHEAD <= self.room()
    }
}

/// See [`Limits::fits`]; measured against HAProxy 2.6 with the default
/// `tune.bufsize`, for 1 to 100 header lines.
const HTX_OVERHEAD: usize = 79;

/// Header slots on the stack; heads allowed more lines use the heap.
const STACK_FIELDS: usize = 128;

/// Why a head was refused. The status is what the peer is answered
/// (400 or 422 for a request; a bad response gets 502).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("malformed head")]
    Malformed,
    #[error("head too large")]
    TooLarge,
    #[error("too many header lines")]
    TooManyFields,
    #[error("conflicting Host headers")]
    Host,
    #[error("invalid Content-Length")]
    ContentLength,
    #[error("invalid Transfer-Encoding")]
    TransferEncoding,
    #[error("unsupported transfer coding before chunked")]
    Coding,
}

impl HeadError {
    /// HAProxy's answer to a request with this fault.
    pub fn status(self) -> u16 {
        match self {
            HeadError::Coding => 422,
            _ => 400,
        }
    }
}

/// Slots for `limits.maxhdr` header lines: on the stack when few enough.
fn header_slots<'s, 'b>(
    stack: &'s mut [MaybeUninit<httparse::Header<'b>>; STACK_FIELDS],
    heap: &'s mut Vec<MaybeUninit<httparse::Header<'b>>>,
    limits: &Limits,
) -> &'s mut [MaybeUninit<httparse::Header<'b>>] {
    if limits.maxhdr <= STACK_FIELDS {
        &mut stack[..limits.maxhdr]
    } else {
        heap.resize_with(limits.maxhdr, MaybeUninit::uninit);
        heap
    }
}

/// What httparse said of a head, as HAProxy would judge it: `Ok(None)`
/// while incomplete, else the head's length once it is complete and
/// within `limits` (`fields`: its header lines).
fn verdict(
    parsed: httparse::Result<usize>,
    buf: &[u8],
    fields: usize,
    limits: &Limits,
) -> Result<Option<usize>, HeadError> {
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= limits.room() => {
            return Err(HeadError::TooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyFields),
        Err(_) => return Err(HeadError::Malformed),
    };
    // The start line counts as one of `maxhdr` lines.
    if fields + 1 > limits.maxhdr {
        return Err(HeadError::TooManyFields);
    }
    if !limits.fits(len, fields) {
        return Err(HeadError::TooLarge);
    }
    Ok(Some(len))
}

/// Parse a request head from the start of `buf`. `Ok(None)`: incomplete.
/// The header index is built in `spare`'s allocation (recycled between
/// requests; taken on success).
pub fn parse_request(
    buf: &[u8],
    limits: &Limits,
    spare: &mut Vec<Field>,
) -> Result<Option<RequestHead>, HeadError> {
    let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_FIELDS];
    let mut heap = Vec::new();
    let slots = header_slots(&mut stack, &mut heap, limits);
    let mut req = httparse::Request::new(&mut []);
    let parsed = req.parse_with_uninit_headers(buf, slots);
    let Some(len) = verdict(parsed, buf, req.headers.len(), limits)? else {
        return Ok(None);
    };
    let (Some(method), Some(path), Some(version)) = (req.method, req.path, req.version) else {
        return Err(HeadError::Malformed);
    };
    let fields = collect(buf, req.headers, spare);
    let method_kind = match method {
        "HEAD" => Method::Head,
        "CONNECT" => Method::Connect,
        _ => Method::Other,
    };
    // Methods are case-sensitive (RFC 9110 9.1).
    let idempotent = matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
    );
    let mut head = RequestHead {
        len,
        method: Span::within(buf, method.as_bytes()),
        target: Span::within(buf, path.as_bytes()),
        minor: version,
        fields,
        framing: Framing::Empty,
        conn: ConnOpts::default(),
        upgrade: false,
        te_trailers: false,
        normalized_length: None,
        smuggle_guard: false,
        method_kind,
        idempotent,
    };
    check_request(buf, &mut head)?;
    Ok(Some(head))
}

/// Parse a response head. `Ok(None)`: incomplete. `request` tells whether
/// the request was HEAD or CONNECT (which change the framing).
pub fn parse_response(
    buf: &[u8],
    limits: &Limits,
    request: Method,
    spare: &mut Vec<Field>,
) -> Result<Option<ResponseHead>, HeadError> {
    let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_FIELDS];
    let mut heap = Vec::new();
    let slots = header_slots(&mut stack, &mut heap, limits);
    let mut resp = httparse::Response::new(&mut []);
    let parsed =
        httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut resp, buf, slots);
    let Some(len) = verdict(parsed, buf, resp.headers.len(), limits)? else {
        return Ok(None);
    };
    let (Some(version), Some(status)) = (resp.version, resp.code) else {
        return Err(HeadError::Malformed);
    };
    if status < 100 {
        return Err(HeadError::Malformed);
    }
    // "200 OK": from the code to the end of the reason.
    let status_text = status_span(buf, len);
    let fields = collect(buf, resp.headers, spare);
    let mut head = ResponseHead {
        len,
        minor: version,
        status,
        status_text,
        fields,
        framing: Framing::UntilClose,
        conn: ConnOpts::default(),
        normalized_length: None,
        keep_alive: false,
        smuggle_guard: false,
    };
    check_response(buf, &mut head, request)?;
    Ok(Some(head))
}

/// The status code and reason of a status line: after `HTTP/1.x ` up to
/// the end of the line (trailing whitespace trimmed).
fn status_span(buf: &[u8], len: usize) -> Span {
    let head = &buf[..len];
    // httparse accepted the line: it starts (after empty lines) with
    // "HTTP/1.x" and one space.
    let start = head
        .windows(5)
        .position(|w| w == b"HTTP/")
        .map_or(0, |p| p + 9);
    let line_end = head[start..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(len, |p| start + p);
    let mut end = line_end;
    while end > start && matches!(head[end - 1], b'\r' | b' ' | b'\t') {
        end -= 1;
    }
    Span {
        start: start as u32,
        end: end as u32,
    }
}

/// Index the header lines into `spare` (a recycled, empty vector) and
/// take it.
fn collect(buf: &[u8], headers: &[httparse::Header<'_>], spare: &mut Vec<Field>) -> Vec<Field> {
    let mut fields = std::mem::take(spare);
    fields.clear();
    fields.extend(headers.iter().map(|h| Field {
        name: Span::within(buf, h.name.as_bytes()),
        value: Span::within(buf, h.value),
        kind: Kind::of(h.name.as_bytes()),
        hop: false,
    }));
    fields
}

/// Comma-separated tokens of a header value, trimmed, empty ones skipped.
pub fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(|t| t.trim_ascii())
        .filter(|t| !t.is_empty())
}

/// A `Content-Length` value: digits, or a list of identical digit runs.
fn content_length(value: &[u8]) -> Option<(u64, bool)> {
    let mut found: Option<u64> = None;
    let mut list = false;
    for (i, token) in value.split(|&b| b == b',').enumerate() {
        let token = token.trim_ascii();
        if token.is_empty() || !token.iter().all(u8::is_ascii_digit) || token.len() > 19 {
            return None;
        }
        let n: u64 = std::str::from_utf8(token).ok()?.parse().ok()?;
        if found.is_some_and(|f| f != n) {
            return None;
        }
        found = Some(n);
        list |= i > 0;
    }
    found.map(|n| (n, list))
}

/// What the framing headers of one message say.
#[derive(Default)]
struct Lengths {
    length: Option<u64>,
    list: bool,
    chunked: bool,
    /// Transfer-Encoding present at all.
    encoded: bool,
    /// The last coding is `chunked`.
    chunked_last: bool,
    /// Another coding came before `chunked`.
    coding_before: bool,
}

/// Read `Content-Length`, `Transfer-Encoding` and `Connection`, mark the
/// hop-by-hop lines, and return what they say.
fn scan_fields(
    buf: &[u8],
    fields: &mut [Field],
    conn: &mut ConnOpts,
) -> Result<Lengths, HeadError> {
    let mut l = Lengths::default();
    for f in fields.iter_mut() {
        let value = f.value.of(buf);
        match f.kind {
            Kind::ContentLength => {
                let (n, list) = content_length(value).ok_or(HeadError::ContentLength)?;
                if l.length.is_some_and(|prev| prev != n) {
                    return Err(HeadError::ContentLength);
                }
                if l.length.is_some() {
                    f.hop = true; // a repeat of the same value
                } else {
                    l.list = list;
                }
                l.length = Some(n);
            }
            Kind::TransferEncoding => {
                l.encoded = true;
                for coding in tokens(value) {
                    if coding.eq_ignore_ascii_case(b"chunked") {
                        if l.chunked {
                            return Err(HeadError::TransferEncoding);
                        }
                        l.chunked = true;
                        l.chunked_last = true;
                    } else {
                        if !l.chunked {
                            l.coding_before = true;
                        }
                        l.chunked_last = false;
                    }
                }
            }
            Kind::Connection => {
                f.hop = true;
                for token in tokens(value) {
                    if token.eq_ignore_ascii_case(b"close") {
                        conn.close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        conn.keep_alive = true;
                    } else if token.eq_ignore_ascii_case(b"upgrade") {
                        conn.upgrade = true;
                    } else {
                        conn.names = true;
                    }
                }
            }
            Kind::KeepAlive | Kind::ProxyConnection | Kind::Te => f.hop = true,
            _ => {}
        }
    }
    if conn.names {
        drop_named(buf, fields);
    }
    Ok(l)
}

/// Mark the lines that `Connection` names as hop-by-hop (RFC 9110 7.6.1).
/// Framing and `Host` lines are kept whatever a peer names: dropping them
/// would change how the message is read downstream.
fn drop_named(buf: &[u8], fields: &mut [Field]) {
    let named = |name: &[u8], fields: &[Field]| {
        fields
            .iter()
            .filter(|c| c.kind == Kind::Connection)
            .any(|c| tokens(c.value.of(buf)).any(|t| t.eq_ignore_ascii_case(name)))
    };
    for i in 0..fields.len() {
        let f = fields[i];
        if matches!(
            f.kind,
            Kind::Other | Kind::Cookie | Kind::SetCookie | Kind::CacheControl
        ) && named(f.name.of(buf), fields)
        {
            fields[i].hop = true;
        }
    }
}

fn check_request(buf: &[u8], head: &mut RequestHead) -> Result<(), HeadError> {
    let l = scan_fields(buf, &mut head.fields, &mut head.conn)?;
    // Host: repeats must agree (then only the first is forwarded).
    let mut host: Option<&[u8]> = None;
    let mut has_upgrade = false;
    for f in head.fields.iter_mut() {
        match f.kind {
            Kind::Host => {
                let value = f.value.of(buf);
                match host {
                    None => host = Some(value),
                    Some(h) if h.eq_ignore_ascii_case(value) => f.hop = true,
                    Some(_) => return Err(HeadError::Host),
                }
            }
            Kind::Te => {
                head.te_trailers |= tokens(f.value.of(buf)).any(|t| {
                    t.split(|&b| b == b';')
                        .next()
                        .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"trailers"))
                });
            }
            Kind::Upgrade => has_upgrade = true,
            _ => {}
        }
    }
    // RFC 9112 3.2.2: the authority of an absolute URI and Host must agree
    // (HAProxy 2.6 refuses the request when they do not).
    if let (Some(authority), Some(host)) = (authority(head.target.of(buf)), host) {
        if !same_authority(authority, host) {
            return Err(HeadError::Host);
        }
    }
    head.upgrade = has_upgrade && head.conn.upgrade;
    for f in head.fields.iter_mut() {
        if f.kind == Kind::Upgrade && !head.upgrade {
            f.hop = true;
        }
    }
    if l.encoded {
        if !l.chunked_last {
            return Err(HeadError::TransferEncoding);
        }
        if l.coding_before {
            return Err(HeadError::Coding);
        }
        head.framing = Framing::Chunked;
        if l.length.is_some() {
            drop_kind(&mut head.fields, Kind::ContentLength);
            head.smuggle_guard = true;
        }
    } else if let Some(n) = l.length {
        head.framing = if n == 0 {
            Framing::Empty
        } else {
            Framing::Length(n)
        };
        if l.list {
            head.normalized_length = Some(n);
            drop_kind(&mut head.fields, Kind::ContentLength);
        }
    }
    Ok(())
}

fn check_response(buf: &[u8], head: &mut ResponseHead, request: Method) -> Result<(), HeadError> {
    let l = scan_fields(buf, &mut head.fields, &mut head.conn)?;
    let upgrade = head.status == 101;
    for f in head.fields.iter_mut() {
        if f.kind == Kind::Upgrade && !upgrade {
            f.hop = true;
        }
    }
    head.keep_alive = if head.minor == 0 {
        head.conn.keep_alive && !head.conn.close
    } else {
        !head.conn.close
    };
    let bodiless = request == Method::Head
        || (100..200).contains(&head.status)
        || head.status == 204
        || head.status == 304
        || (request == Method::Connect && (200..300).contains(&head.status));
    if l.encoded && l.length.is_some() {
        drop_kind(&mut head.fields, Kind::ContentLength);
        head.smuggle_guard = true;
    }
    head.framing = if bodiless {
        Framing::Empty
    } else if l.encoded {
        // RFC 9112 6.3: chunked must come last, else the body runs to close.
        if l.chunked_last {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else if let Some(n) = l.length {
        if l.list {
            head.normalized_length = Some(n);
            drop_kind(&mut head.fields, Kind::ContentLength);
        }
        if n == 0 {
            Framing::Empty
        } else {
            Framing::Length(n)
        }
    } else {
        Framing::UntilClose
    };
    if head.framing == Framing::UntilClose {
        head.keep_alive = false;
    }
    Ok(())
}

fn drop_kind(fields: &mut [Field], kind: Kind) {
    for f in fields.iter_mut().filter(|f| f.kind == kind) {
        f.hop = true;
    }
}

/// The authority of an absolute-form target (`http://host:port/path`).
pub fn authority(target: &[u8]) -> Option<&[u8]> {
    let colon = target.iter().position(|&b| b == b':')?;
    let scheme = &target[..colon];
    if scheme.is_empty()
        || !scheme
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(b))
    {
        return None;
    }
    let rest = target[colon + 1..].strip_prefix(b"//")?;
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

/// The origin-form part of a target: the path and query of an absolute
/// URI, or the target itself.
pub fn origin_part(target: &[u8]) -> &[u8] {
    match authority(target) {
        Some(auth) => {
            let start = auth.as_ptr() as usize - target.as_ptr() as usize + auth.len();
            &target[start..]
        }
        None => target,
    }
}

/// `a.example` and `A.example:80` are the same authority for `http`.
fn same_authority(authority: &[u8], host: &[u8]) -> bool {
    fn strip(a: &[u8]) -> &[u8] {
        a.strip_suffix(b":80")
            .or_else(|| a.strip_suffix(b":443"))
            .unwrap_or(a)
    }
    strip(authority).eq_ignore_ascii_case(strip(host))
}

/// Decides when a growing buffer is worth parsing again: when an empty
/// line may have arrived (the end of a head), and otherwise each time the
/// buffer has doubled, so garbage is refused early while a client sending
/// one byte at a time does not cost a full parse per byte.
#[derive(Debug, Default)]
pub struct HeadScan {
    /// Bytes already searched for an empty line.
    searched: usize,
    /// Buffer length at the last parse.
    parsed: usize,
}

impl HeadScan {
    /// True when `buf` (the same buffer, grown) should be parsed now.
    pub fn worth_parsing(&mut self, buf: &[u8]) -> bool {
        if buf.is_empty() || buf.len() == self.parsed {
            return false;
        }
        let tail = &buf[self.searched.saturating_sub(3).min(buf.len())..];
        let may_end =
            tail.windows(2).any(|w| w == b"\n\n") || tail.windows(3).any(|w| w == b"\n\r\n");
        self.searched = buf.len();
        if may_end || buf.len() >= 2 * self.parsed {
            self.parsed = buf.len();
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests;
