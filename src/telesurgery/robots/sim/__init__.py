"""The simulated patient side: dVRK PSM kinematics, the MuJoCo peg-transfer scene, SimRobot.

- ``kinematics``: closed-form FK/IK of the classic PSM with a large needle driver (pure).
- ``scene``: where the board, pegs, rings, RCMs and the endoscope are (plain values).
- ``model``: the MuJoCo model generated from the scene.
- ``robot``: ``SimRobot``/``SimArm``, the CRTK robot on that model, with peg-transfer status.
"""
