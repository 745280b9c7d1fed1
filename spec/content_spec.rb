# frozen_string_literal: true

require "spec_helper"

RSpec.describe RedisIPC::Content do
  it "writes every value as JSON text, Strings included" do
    expect(described_class.encode("42")).to eq('"42"')
    expect(described_class.encode(42)).to eq("42")
    expect(described_class.encode(nil)).to eq("null")
    expect(described_class.encode({ a: [1, 2.5, true] })).to eq('{"a":[1,2.5,true]}')
    expect(described_class.encode(:sym)).to eq('"sym"')
  end

  it "reads JSON with symbol keys and keeps non-JSON text raw, as 1.x does" do
    expect(described_class.decode('{"a":{"b":[1]}}')).to eq({ a: { b: [1] } })
    expect(described_class.decode('"42"')).to eq("42")
    expect(described_class.decode("42")).to eq(42)
    expect(described_class.decode("Hello!")).to eq("Hello!")
    expect(described_class.decode("")).to eq("")
  end

  it "round-trips a String that looks like JSON" do
    ["42", "null", "[1]", '{"a":1}', ""].each do |s|
      expect(described_class.decode(described_class.encode(s))).to eq(s)
    end
  end

  it "refuses values JSON cannot carry with ArgumentError" do
    [Object.new, Time.now, 1.0 / 0, Float::NAN, { 1 => 2 }, [Object.new], "\xff".b.force_encoding("UTF-8")].each do |bad|
      expect { described_class.encode(bad) }.to raise_error(ArgumentError), "expected #{bad.inspect} to be refused"
    end
  end

  it "refuses nesting deeper than #{described_class::MAX_DEPTH} levels" do
    deep = []
    cur = deep
    200.times { cur << (n = []); cur = n }
    expect { described_class.encode(deep) }.to raise_error(ArgumentError, /nests deeper/)
  end
end
