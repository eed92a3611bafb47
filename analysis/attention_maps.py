"""Raw and CBAM-refined feature maps of teacher and student as one PNG grid (the paper's Fig. 1).

    python analysis/attention_maps.py --checkpoint runs/student-resnet18-shapes-attnfd-<hash>/model.pt

Unlike analysis/ablation.py this needs torch: it runs the models. ``--help`` lists the options.
"""

from attnfd.attention_maps_cli import main

if __name__ == "__main__":
    main()
