from agent.container_spec import cgroup_settings, command_and_args, container_hash, expand, hosts_file


def test_expand_rules():
    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)", env) == "1-two"
    assert expand("$$(A)", env) == "$(A)"
    assert expand("$(MISSING) $$ $", env) == "$(MISSING) $ $"


def test_command_and_args_against_image():
    assert command_and_args({}, {}) == (None, None)                       # image's both
    assert command_and_args({"args": ["x"]}, {}) == (None, ["x"])         # image entrypoint, new cmd
    assert command_and_args({"command": ["sh"]}, {}) == (["sh"], [])      # image cmd dropped
    assert command_and_args({"command": ["echo"], "args": ["$(V)"]}, {"V": "v"}) == (["echo"], ["v"])


def test_cgroup_settings_from_resources():
    s = cgroup_settings({"resources": {"limits": {"memory": "64Mi", "cpu": "250m"}, "requests": {"cpu": "100m"}}})
    assert s == {"memory_limit": 64 * 2**20, "cpu_quota": 25000, "cpu_period": 100000, "cpu_shares": 102}
    assert cgroup_settings({})["cpu_shares"] == 2 and cgroup_settings({})["memory_limit"] is None
    # a limit without a request: the request defaults to it
    assert cgroup_settings({"resources": {"limits": {"cpu": "2"}}})["cpu_shares"] == 2048
    assert cgroup_settings({"resources": {"limits": {"cpu": "1m"}}})["cpu_quota"] == 1000


def test_hash_changes_with_image_not_resources():
    a = {"name": "c", "image": "busybox:1", "resources": {"limits": {"cpu": "1"}}}
    b = {**a, "resources": {}}
    c = {**a, "image": "busybox:2"}
    assert container_hash(a) == container_hash(b) != container_hash(c)


def test_hosts_file():
    text = hosts_file("10.0.0.5", "web", [{"ip": "1.2.3.4", "hostnames": ["x", "y"]}])
    assert "127.0.0.1\tlocalhost" in text and "10.0.0.5\tweb" in text and "1.2.3.4\tx\ty" in text
