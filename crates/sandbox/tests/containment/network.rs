//! No network by default: TCP and UDP to listeners on the host's loopback, agentd's own port
//! included, never connect.

use std::io::ErrorKind;
use std::net::{TcpListener, UdpSocket};

use agentd_sandbox::CommandSpec;

use crate::support::Fixture;

/// Tries TCP to each port and UDP to `udp`, printing one `name=exit-code` line each.
fn attempts(tcp: &[(&str, u16)], udp: u16) -> String {
    let mut line = String::new();
    for (name, port) in tcp {
        line.push_str(&format!(
            "(exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null; echo {name}=$?; "
        ));
    }
    line.push_str(&format!(
        "(echo datagram > /dev/udp/127.0.0.1/{udp}) 2>/dev/null; echo udp=$?; echo done"
    ));
    line
}

fn exit_of(text: &str, name: &str) -> i32 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name} missing: {text}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_and_udp_to_loopback_listeners_never_connect() {
    let fx = Fixture::production().await;
    let app = agentd_test_support::spawn_app().await;
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let line = attempts(
        &[("listener", tcp.local_addr().unwrap().port()), ("server", app.addr.port())],
        udp.local_addr().unwrap().port(),
    );

    let out = fx.sh(&line).await;
    let text = out.output.text();
    assert!(text.contains("done"), "{text}");
    for name in ["listener", "server", "udp"] {
        assert_ne!(exit_of(&text, name), 0, "{name} connected: {text}");
    }
    assert_eq!(
        tcp.accept().map(|_| ()).unwrap_err().kind(),
        ErrorKind::WouldBlock,
        "a TCP connection arrived"
    );
    let mut buf = [0u8; 64];
    assert_eq!(
        udp.recv_from(&mut buf).map(|_| ()).unwrap_err().kind(),
        ErrorKind::WouldBlock,
        "a datagram arrived"
    );
    // The server is still fine.
    assert!(app.client.get(app.url("/health")).send().await.unwrap().status().is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_allowed_the_network_does_reach_a_listener() {
    // The control of the test above: the same probe connects when the network is allowed.
    let fx = Fixture::production().await;
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let line = attempts(
        &[("listener", tcp.local_addr().unwrap().port())],
        udp.local_addr().unwrap().port(),
    );
    let out = fx.run(CommandSpec::shell(line, &fx.ws).with_network(true)).await;
    let text = out.output.text();
    assert_eq!(exit_of(&text, "listener"), 0, "{text}");
    assert_eq!(exit_of(&text, "udp"), 0, "{text}");
    tcp.set_nonblocking(true).unwrap();
    assert!(tcp.accept().is_ok(), "no connection arrived");
    udp.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(udp.recv_from(&mut buf).unwrap().0, b"datagram\n".len());
}
