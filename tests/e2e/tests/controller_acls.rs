//! The controller listener under an authorizer, as on Kafka's controllers: DescribeQuorum needs
//! DESCRIBE on the cluster and DescribeCluster (controller endpoints) ALTER, for the listener's
//! principal (`User:ANONYMOUS`, PLAINTEXT), judged on the ACLs of the metadata log.
//!
//! ```text
//!  one node, StandardAuthorizer, allow.everyone.if.no.acl.found=true
//!    controller listener: DescribeQuorum ok, DescribeCluster ok      (no ACL on the cluster)
//!    client listener: CreateAcls DENY User:ANONYMOUS DESCRIBE on the cluster
//!    controller listener: DescribeQuorum and DescribeCluster CLUSTER_AUTHORIZATION_FAILED
//! ```

use std::thread;
use std::time::{Duration, Instant};

use gregor_e2e::cluster::Cluster;
use gregor_e2e::cluster_client::metadata_quorum_request;
use gregor_e2e::raw::RawConn;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::{CreateAclsRequest, DescribeClusterRequest};
use kafka_protocol::protocol::StrBytes;

const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;

/// (DescribeQuorum's error, DescribeCluster's error) on the controller listener.
fn controller_answers(node: std::net::SocketAddr) -> (i16, i16) {
    let mut c = RawConn::connect(node);
    let quorum = c
        .request(2, &metadata_quorum_request())
        .expect("DescribeQuorum");
    let cluster = c
        .request(1, &DescribeClusterRequest::default().with_endpoint_type(2))
        .expect("DescribeCluster");
    (quorum.error_code, cluster.error_code)
}

#[test]
fn the_controller_listener_checks_describe_and_alter_on_the_cluster() {
    let cluster = Cluster::start(
        1,
        &[
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found=true",
        ],
    );
    let node = cluster.node(1);
    assert_eq!(
        controller_answers(node.controller_addr),
        (0, 0),
        "no ACL yet"
    );

    let deny = AclCreation::default()
        .with_resource_type(4)
        .with_resource_name(StrBytes::from_static_str("kafka-cluster"))
        .with_resource_pattern_type(3)
        .with_principal(StrBytes::from_static_str("User:ANONYMOUS"))
        .with_host(StrBytes::from_static_str("*"))
        .with_operation(8)
        .with_permission_type(2);
    let mut client = RawConn::connect(node.addr);
    let created = client
        .request(3, &CreateAclsRequest::default().with_creations(vec![deny]))
        .expect("CreateAcls");
    assert_eq!(created.results.len(), 1);
    assert_eq!(created.results[0].error_code, 0, "{:?}", created.results[0]);

    // The controller listener judges on its own node's image: a moment after the commit.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answers = controller_answers(node.controller_addr);
        if answers == (CLUSTER_AUTHORIZATION_FAILED, CLUSTER_AUTHORIZATION_FAILED) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {answers:?} 10 s after the DENY ACL\n{}",
            cluster.logs()
        );
        thread::sleep(Duration::from_millis(100));
    }
    // The harness reads the node's stderr on its own thread: the line may land a moment after
    // the answer.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cluster
        .logs()
        .contains("Principal = User:ANONYMOUS is Denied operation = DESCRIBE")
    {
        assert!(
            Instant::now() < deadline,
            "the denial is in the audit log\n{}",
            cluster.logs()
        );
        thread::sleep(Duration::from_millis(50));
    }
}
