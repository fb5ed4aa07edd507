using MsiProxy.ImdsEmulator.Control;

namespace MsiProxy.ImdsEmulator.Hosting;

/// <summary>Settings only the standalone program uses, from the same "Emulator" section.</summary>
internal sealed class EmulatorProgramOptions
{
    public ControlOptions Control { get; set; } = new();

    /// <summary>Path of a JSON fault file enqueued at start.</summary>
    public string? FaultsFile { get; set; }
}
