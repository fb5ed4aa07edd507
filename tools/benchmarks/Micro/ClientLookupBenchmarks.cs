using System.Net;
using BenchmarkDotNet.Attributes;
using MsiProxy.Clients;

namespace MsiProxy.Benchmarks.Micro;

/// <summary>Caller lookup (one per request) with 10,000 single-address registrations and 16 CIDR ranges.</summary>
public class ClientLookupBenchmarks
{
    private readonly ClientRegistry _registry = new(TimeProvider.System);
    private readonly IPAddress _registered = IPAddress.Parse("10.1.20.30");
    private readonly IPAddress _inRange = IPAddress.Parse("172.16.5.9");
    private readonly IPAddress _mapped = IPAddress.Parse("10.1.20.30").MapToIPv6();
    private readonly IPAddress _unknown = IPAddress.Parse("192.168.200.1");

    [GlobalSetup]
    public void Setup()
    {
        _registry.RegisterAll([.. Enumerable.Range(0, 10_000).Select(i => new ClientRegistration
        {
            Name = $"client-{i}",
            Address = AddressRange.Parse($"10.{1 + (i / 65536)}.{i / 256 % 256}.{i % 256}"),
            Identities = [IdentityBinding.Any],
            Source = RegistrationSources.Configuration,
        })]);

        for (var i = 0; i < 16; i++)
        {
            _registry.Register(new ClientRegistration
            {
                Name = $"range-{i}",
                Address = AddressRange.Parse($"172.{16 + i}.0.0/16"),
                Source = RegistrationSources.Configuration,
            });
        }
    }

    [Benchmark(Baseline = true)]
    public object? Find_exact_address() => _registry.Find(_registered);

    [Benchmark]
    public object? Find_IPv4_mapped_address() => _registry.Find(_mapped);

    [Benchmark]
    public object? Find_in_CIDR_range() => _registry.Find(_inRange);

    [Benchmark]
    public object? Find_unregistered() => _registry.Find(_unknown);
}
