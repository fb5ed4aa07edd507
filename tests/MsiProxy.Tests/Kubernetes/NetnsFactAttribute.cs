namespace MsiProxy.Tests.Kubernetes;

/// <summary>A fact that needs root, <c>ip netns</c> and iptables; skipped with the reason when the machine lacks them.</summary>
public sealed class NetnsFactAttribute : FactAttribute
{
    public NetnsFactAttribute()
    {
        if (!OperatingSystem.IsLinux())
        {
            Skip = "network namespaces need Linux";
        }
        else if (Environment.UserName != "root")
        {
            Skip = "creating network namespaces needs root";
        }
        else if (!File.Exists("/usr/sbin/ip") && !File.Exists("/sbin/ip") && !File.Exists("/usr/bin/ip"))
        {
            Skip = "the ip command (iproute2) is not installed";
        }
        else if (!File.Exists("/usr/sbin/iptables") && !File.Exists("/sbin/iptables"))
        {
            Skip = "iptables is not installed (apt-get install iptables)";
        }
        else if (!File.Exists("/usr/bin/curl"))
        {
            Skip = "curl is not installed";
        }
    }
}
