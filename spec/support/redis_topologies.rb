# frozen_string_literal: true

require_relative "redis_server"
require "redis"

# Real high-availability topologies on loopback, plain TCP (the suite's TLS
# pass included: the servers replicate and gossip among themselves on
# these ports).

# What both setups do while they start and change.
module TopologyWaits
  # A primary sends its data to a replica at once: by default Redis waits
  # 5 s for more replicas to share one transfer, a wait each setup and each
  # failover (the old primary syncs from the new one) would pay.
  SYNC_AT_ONCE = ["--repl-diskless-sync-delay", "0"].freeze

  private

  def wait_for(what, within: 20)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + within
    until yield
      raise "timed out waiting for #{what}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.05
    end
  end
end

# A primary, a replica and three sentinels watching them as "mymaster"
# (quorum 2, a primary down after 1 s). With `tls:` (TLSCertificates)
# everything, replication and the sentinels included, talks TLS only.
class SentinelSetup
  include TopologyWaits
  attr_reader :primary, :replica, :sentinel_ports

  NAME = "mymaster"

  def initialize(tls: nil)
    @tls = tls
  end

  def start
    @primary = RedisServer.new(tls: @tls, args: server_args).start
    @replica = RedisServer.new(tls: @tls, args: [*server_args, "--replicaof", "127.0.0.1", data_port(@primary).to_s]).start
    wait_for("the replica to sync") { info(@replica, "replication")["master_link_status"] == "up" }
    @dir = Dir.mktmpdir("redis_ipc_sentinels")
    @sentinel_ports = []
    @sentinel_pids = 3.times.map do |i|
      port = RedisServer.free_port
      @sentinel_ports << port
      conf = File.join(@dir, "sentinel#{i}.conf")
      File.write(conf, <<~CONF)
        #{@tls ? "port 0\ntls-port #{port}" : "port #{port}"}
        #{tls_conf}
        bind 127.0.0.1
        dir #{@dir}
        sentinel monitor #{NAME} 127.0.0.1 #{data_port(@primary)} 2
        sentinel down-after-milliseconds #{NAME} 1000
        sentinel failover-timeout #{NAME} 4000
        sentinel parallel-syncs #{NAME} 1
      CONF
      Process.spawn({ "LD_PRELOAD" => nil }, RedisServer.binary, conf, "--sentinel",
                    out: File.join(@dir, "sentinel#{i}.log"), err: [:child, :out])
    end
    wait_for("the sentinels to know the replica and each other") do
      @sentinel_ports.all? do |port|
        sentinel(port) { |r| r.call("SENTINEL", "REPLICAS", NAME).size == 1 && r.call("SENTINEL", "SENTINELS", NAME).size == 2 }
      end
    end
    self
  end

  def sentinels = @sentinel_ports.map { |port| { host: "127.0.0.1", port: port } }

  def redis_options
    options = { sentinels: sentinels, name: NAME }
    @tls ? options.merge(ssl: true, ssl_params: { ca_file: @tls.ca_file }) : options
  end

  # The port the sentinels name as primary now.
  def primary_port
    sentinel(@sentinel_ports.first) { |r| r.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", NAME).last.to_i }
  end

  def server_on(port) = [@primary, @replica].find { |s| data_port(s) == port }

  # SENTINEL FAILOVER, returning once every sentinel names the new primary
  # and it accepts writes.
  def failover!
    before = primary_port
    sentinel(@sentinel_ports.first) { |r| r.call("SENTINEL", "FAILOVER", NAME) }
    wait_for("the failover", within: 20) do
      @sentinel_ports.all? { |p| sentinel(p) { |r| r.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", NAME).last.to_i } != before } &&
        role(server_on(primary_port)) == "master"
    end
    before
  end

  def stop
    (@sentinel_pids || []).each do |pid|
      Process.kill(:TERM, pid)
      Process.wait(pid)
    rescue Errno::ESRCH, Errno::ECHILD
      nil
    end
    @replica&.stop
    @primary&.stop
    FileUtils.rm_rf(@dir) if @dir
  end

  private

  # With TLS the servers replicate over their TLS port, which the sentinels watch.
  def data_port(server) = @tls ? server.tls_port : server.port
  def server_args = @tls ? [*SYNC_AT_ONCE, "--tls-replication", "yes"] : SYNC_AT_ONCE

  def tls_conf
    return "" unless @tls

    "tls-cert-file #{@tls.server_cert}\ntls-key-file #{@tls.server_key}\ntls-ca-cert-file #{@tls.ca_file}\n" \
      "tls-auth-clients no\ntls-replication yes"
  end

  def client(port)
    tls = @tls ? { ssl: true, ssl_params: { ca_file: @tls.ca_file } } : {}
    RedisClient.new(host: "127.0.0.1", port: port, timeout: 2, **tls)
  end

  def sentinel(port, &block)
    r = client(port)
    block.call(r)
  rescue RedisClient::Error
    nil
  ensure
    r&.close
  end

  def role(server)
    r = RedisClient.new(host: "127.0.0.1", port: server.port, timeout: 2)
    r.call("ROLE").first
  ensure
    r&.close
  end

  def info(server, section)
    r = RedisClient.new(host: "127.0.0.1", port: server.port, timeout: 2)
    r.call("INFO", section).lines.map { |l| l.chomp.split(":", 2) }.select { |kv| kv.size == 2 }.to_h
  ensure
    r&.close
  end
end

# Six cluster nodes, three primaries with a replica each (node timeout 1 s).
# With `tls:` (TLSCertificates) the nodes listen on TLS only, and the
# cluster bus and replication talk TLS too (`tls-cluster`): CLUSTER SLOTS
# and MOVED then name the TLS ports.
class ClusterSetup
  include TopologyWaits
  attr_reader :nodes

  def initialize(tls: nil)
    @tls = tls
  end

  def start
    @nodes = 6.times.map do
      RedisServer.new(tls: @tls, args: ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                                        "--cluster-node-timeout", "1000", "--cluster-replica-validity-factor", "0",
                                        *SYNC_AT_ONCE, *tls_only]).start
    end
    tls_cli = @tls ? ["--tls", "--cacert", @tls.ca_file] : []
    out = IO.popen(["redis-cli", *tls_cli, "--cluster", "create", *@nodes.map { |n| "127.0.0.1:#{data_port(n)}" },
                    "--cluster-replicas", "1", "--cluster-yes", err: [:child, :out]], &:read)
    raise "cluster create failed: #{out}" unless $?.success?

    wait_for("the cluster to be ok") { @nodes.all? { |n| call(n, "CLUSTER", "INFO").include?("cluster_state:ok") } }
    self
  end

  # The port clients use: the TLS one on a TLS cluster (the plain port is closed there).
  def data_port(node) = @tls ? node.tls_port : node.port

  def seeds = @nodes.map { |n| "#{@tls ? "rediss" : "redis"}://127.0.0.1:#{data_port(n)}" }

  def redis_options = @tls ? { nodes: seeds, ssl_params: { ca_file: @tls.ca_file } } : { nodes: seeds }

  def slot_of(key) = call(@nodes.first, "CLUSTER", "KEYSLOT", key)

  # The node that owns slot now, as node `asker` sees it; nil while a
  # failover leaves the slot out of CLUSTER SLOTS.
  def owner(slot, asker = alive.first)
    range = call(asker, "CLUSTER", "SLOTS").find { |r| slot.between?(r[0], r[1]) }
    port = range&.dig(2, 1)
    @nodes.find { |n| data_port(n) == port } if port
  end

  def replica_of(primary)
    id = node_id(primary)
    alive.find { |n| call(n, "ROLE").then { |role| role[0] == "slave" && role[2] == data_port(primary) } } ||
      raise("no replica of #{id}")
  end

  def node_id(node) = call(node, "CLUSTER", "MYID")

  def alive = @nodes.select(&:pid)

  # CLUSTER FAILOVER on the replica of the slot's primary; returns once
  # every live node names the replica as the owner.
  def failover!(slot)
    old = owner(slot)
    replica = replica_of(old)
    call(replica, "CLUSTER", "FAILOVER")
    wait_for("the failover", within: 20) { alive.all? { |n| owner(slot, n) == replica } }
    replica
  end

  # Kills the slot's primary (-9) and waits until its replica took over.
  def kill_primary!(slot)
    old = owner(slot)
    replica = replica_of(old)
    Process.kill(:KILL, old.pid)
    Process.wait(old.pid)
    old.instance_variable_set(:@pid, nil)
    wait_for("the replica's promotion", within: 30) { alive.all? { |n| owner(slot, n) == replica rescue false } }
    replica
  end

  # Moves slot (with its keys) from its primary to another primary, the way
  # redis-cli --cluster reshard does; yields between MIGRATE batches.
  def migrate!(slot)
    source = owner(slot)
    target = alive.find { |n| n != source && call(n, "ROLE")[0] == "master" }
    call(target, "CLUSTER", "SETSLOT", slot, "IMPORTING", node_id(source))
    call(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", node_id(target))
    loop do
      keys = call(source, "CLUSTER", "GETKEYSINSLOT", slot, 10)
      break if keys.empty?

      call(source, "MIGRATE", "127.0.0.1", data_port(target), "", 0, 5000, "KEYS", *keys)
      yield if block_given?
    end
    alive.select { |n| call(n, "ROLE")[0] == "master" }.each { |n| call(n, "CLUSTER", "SETSLOT", slot, "NODE", node_id(target)) }
    target
  end

  def stop
    (@nodes || []).each(&:stop)
  end

  # Through the node's unix socket, which every node keeps, TLS or not.
  def call(node, *args)
    r = RedisClient.new(path: node.socket, timeout: 5)
    r.call(*args)
  ensure
    r&.close
  end

  private

  def tls_only = @tls ? ["--port", "0", "--tls-cluster", "yes", "--tls-replication", "yes"] : []
end
