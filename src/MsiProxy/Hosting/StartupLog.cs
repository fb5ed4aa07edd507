using System.Reflection;
using System.Runtime;
using System.Runtime.CompilerServices;

namespace MsiProxy.Hosting;

/// <summary>
/// One line once the listeners are up, saying what runs: the images differ (Native AOT on Linux, ReadyToRun on
/// Windows), and the GC mode is the one docs/benchmarks.md measured only if the build really set it — a misspelt
/// property once left it at the default unnoticed; so with the thread pool's spin limit. DockerfileTests reads this line
/// from the Linux image's binary.
/// </summary>
internal static partial class StartupLog
{
    public static void Write(ILogger logger) => Started(
        logger,
        typeof(StartupLog).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown",
        RuntimeFeature.IsDynamicCodeSupported ? "JIT or ReadyToRun" : "Native AOT",
        Environment.Version.ToString(),
        GCSettings.IsServerGC ? "server" : "workstation",
        // Batch is the latency mode of a GC with background collection off (System.GC.Concurrent=false).
        GCSettings.LatencyMode != GCLatencyMode.Batch,
        AppContext.GetData(SpinLimitSetting)?.ToString() ?? "default");

    /// <summary>The thread pool's spin limit, as the build sets it (MsiProxy.csproj's ThreadPoolSpinCount).</summary>
    private const string SpinLimitSetting = "System.Threading.ThreadPool.UnfairSemaphoreSpinLimit";

    [LoggerMessage(Level = LogLevel.Information,
        Message = "MsiProxy {Version} started: {Compilation}, .NET {RuntimeVersion}, {GcMode} GC, background GC {BackgroundGc}, thread-pool spin limit {ThreadPoolSpinLimit}")]
    private static partial void Started(ILogger logger, string version, string compilation, string runtimeVersion, string gcMode, bool backgroundGc,
        string threadPoolSpinLimit);
}
