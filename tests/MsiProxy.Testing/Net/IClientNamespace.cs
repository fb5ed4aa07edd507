namespace MsiProxy.Testing.Net;

/// <summary>
/// A network namespace a test made (or a container of a test-made engine), where a client may call
/// <c>http://169.254.169.254</c> unchanged because what answers there is the test's: a proxy or an emulator in the
/// namespace (<see cref="TransparentNamespace"/>), or the rig's proxy behind a VM's host rules
/// (<see cref="VmNetwork.ContainerNamespace"/>).
/// </summary>
public interface IClientNamespace
{
    /// <summary>The namespace as the kernel names it, e.g. <c>net:[4026532301]</c>.</summary>
    string Identity { get; }

    /// <summary>Prefix for a command line that runs it inside this namespace, and refuses to run it anywhere else.</summary>
    IReadOnlyList<string> Wrapper { get; }
}
