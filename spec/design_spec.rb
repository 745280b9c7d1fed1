# frozen_string_literal: true

require "spec_helper"
require "open3"

# The engine's files call each other without cycles: each uses only files
# below it (README "Layout"), so a newcomer can read it bottom-up. Checked
# on the objects the suite's build left, with nm.
RSpec.describe "the engine's design" do
  let(:objects) do
    newest = Dir.glob(File.expand_path("../tmp/**/ipc_stream.o", __dir__)).max_by { |f| File.mtime(f) }
    newest ? Dir.glob(File.join(File.dirname(newest), "ipc_*.o")) : []
  end

  def symbols(object)
    out, status = Open3.capture2("nm", object)
    raise "nm failed on #{object}" unless status.success?

    out.lines.map(&:split)
  end

  # Not under valgrind: runs no C code in this process (nm on the objects).
  it "has no cycle among the engine's files", valgrind: false do
    skip "no engine objects built under tmp/" if objects.empty?
    defined_in = {}
    used_by = Hash.new { |h, k| h[k] = [] }
    objects.each do |object|
      name = File.basename(object, ".o")
      symbols(object).each do |fields|
        if fields.size == 3 && %w[T D B R].include?(fields[1]) then defined_in[fields[2]] = name
        elsif fields.size == 2 && fields[0] == "U" then used_by[name] << fields[1]
        end
      end
    end
    calls = used_by.to_h { |name, used| [name, used.filter_map { |sym| defined_in[sym] }.uniq - [name]] }
    # Depth-first search; a file met again on the current path closes a cycle.
    state = {}
    visit = lambda do |file, path|
      return if state[file] == :done
      raise "cycle: #{(path.drop(path.index(file)) + [file]).join(' -> ')}" if state[file] == :open

      state[file] = :open
      calls.fetch(file, []).each { |callee| visit.call(callee, path + [file]) }
      state[file] = :done
    end
    expect { calls.each_key { |file| visit.call(file, []) } }.not_to raise_error
    expect(calls.size).to be > 20
  end
end
