use super::*;

#[test]
fn hop_by_hop_fields_and_those_named_by_connection_are_removed() {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONNECTION,
        HeaderValue::from_static("close, X-Secret"),
    );
    h.insert("x-secret", HeaderValue::from_static("1"));
    h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    h.insert(header::TE, HeaderValue::from_static("trailers"));
    h.insert(
        header::TRANSFER_ENCODING,
        HeaderValue::from_static("chunked"),
    );
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    strip_hop_by_hop(&mut h);
    assert_eq!(h.len(), 1, "{h:?}");
    assert!(h.contains_key(header::CONTENT_TYPE));
}

#[test]
fn forwarding_fields_append_to_the_client_ones_and_quote_ipv6() {
    let mut h = HeaderMap::new();
    h.insert(
        header::HOST,
        HeaderValue::from_static("blog.localhost:8000"),
    );
    h.insert(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
    h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
    let peer: SocketAddr = "[2001:db8::1]:5555".parse().unwrap();
    let client = Client::new(peer, Scheme::Http);
    let present = Present::of(&h);
    add_forwarding(&mut h, &client, present, client.forwarded("blog.localhost"));
    assert_eq!(h[&X_FORWARDED_FOR], "10.0.0.1, 2001:db8::1");
    assert_eq!(h[&X_FORWARDED_PROTO], "http");
    assert_eq!(h[&X_FORWARDED_HOST], "blog.localhost:8000");
    assert_eq!(
        h[&FORWARDED],
        "for=\"[2001:db8::1]\";host=\"blog.localhost\";proto=http"
    );
}

#[test]
fn the_forwarded_element_is_made_once_per_host_and_appended_to_the_clients() {
    let client = Client::new("192.0.2.7:4000".parse().unwrap(), Scheme::Http);
    let first = client.forwarded("a.localhost").unwrap();
    assert_eq!(first, "for=192.0.2.7;host=\"a.localhost\";proto=http");
    assert_eq!(client.forwarded("a.localhost").unwrap(), first);
    assert_eq!(
        client.forwarded("B.localhost").unwrap(),
        "for=192.0.2.7;host=\"b.localhost\";proto=http"
    );
    let mut h = HeaderMap::new();
    h.insert(FORWARDED, HeaderValue::from_static("for=10.0.0.1"));
    let present = Present::of(&h);
    add_forwarding(&mut h, &client, present, client.forwarded("a.localhost"));
    assert_eq!(
        h[&FORWARDED],
        "for=10.0.0.1, for=192.0.2.7;host=\"a.localhost\";proto=http"
    );
}

#[test]
fn the_name_match_agrees_with_the_list() {
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        assert_eq!(fixed_hop_by_hop(name.as_str()), Some(i), "{name}");
    }
    assert_eq!(fixed_hop_by_hop("content-length"), None);
    assert_eq!(HOP_BY_HOP[UPGRADE_INDEX], header::UPGRADE);
    let mut h = HeaderMap::new();
    h.insert(header::EXPECT, HeaderValue::from_static("100-continue"));
    let p = Present::of(&h);
    assert!(p.expect && !p.fixed.contains(&true));
}

#[test]
fn without_client_fields_the_router_sets_its_own() {
    let mut h = HeaderMap::new();
    h.insert(header::HOST, HeaderValue::from_static("shop.example.org"));
    let peer: SocketAddr = "192.0.2.7:4000".parse().unwrap();
    let client = Client::new(peer, Scheme::Https);
    let present = Present::of(&h);
    add_forwarding(
        &mut h,
        &client,
        present,
        client.forwarded("Shop\"x.example.org"),
    );
    assert_eq!(h[&X_FORWARDED_FOR], "192.0.2.7");
    assert_eq!(h[&X_FORWARDED_PROTO], "https");
    assert_eq!(
        h[&FORWARDED],
        "for=192.0.2.7;host=\"shopx.example.org\";proto=https"
    );
    assert_eq!(h[header::VIA], "1.1 scalefog");
}

#[test]
fn connection_tokens_of_the_fixed_set_and_close_remove_only_what_is_there() {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONNECTION,
        HeaderValue::from_static("Keep-Alive, Upgrade, close"),
    );
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::ETAG, HeaderValue::from_static("\"1\""));
    strip_hop_by_hop(&mut h);
    assert_eq!(h.keys().collect::<Vec<_>>(), [header::ETAG]);
}

#[test]
fn upgrade_needs_both_the_connection_token_and_the_upgrade_field() {
    let mut h = HeaderMap::new();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    assert!(!wants_upgrade(&h));
    h.insert(
        header::CONNECTION,
        HeaderValue::from_static("keep-alive, Upgrade"),
    );
    assert!(wants_upgrade(&h));
}
