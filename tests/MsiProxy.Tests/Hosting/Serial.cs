namespace MsiProxy.Tests.Hosting;

/// <summary>
/// Tests that must have the test process to themselves: those that start real programs (the proxy, SDK clients and
/// their builds would starve the in-process tests' sub-second timeouts on a small machine) and those that assert on
/// captured logs (the proxy's Serilog setup writes through the static Log.Logger, which the most recently started
/// host owns, so parallel hosts would receive each other's lines).
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class Serial
{
    public const string Name = "Serial";
}
